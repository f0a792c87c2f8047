"""output-router and error-router: send a stage's data to webhooks.

The earlier product's ``output_router`` took a list of ``destinations``
(``{id, type, name, enabled, config, on_success, on_error,
payload_template}``) and posted ``{data, is_error, error_message, metadata,
timestamp}`` to each. Its email, database and message-queue types only
logged "would send" and reported success; here they are reported as
failed deliveries saying they are not supported, rather than pretending.

Webhook deliveries retry connection errors themselves (``retry_count``,
``retry_delay_ms`` doubling), unlike http-request, because one stage
delivers to several destinations and a stage retry would post again to
the ones that already succeeded.

``destinations`` is rendered by this component (a lazy key) so that a
``payload_template`` can use the payload's names (``{{data.x}}``,
``{{is_error}}``) alongside ``input``/``upstream``.
"""
from __future__ import annotations

import datetime as _dt
import json
import time
from typing import Any

from flowmason.kernel.errors import StageError

from flowmason.kernel.outputs import described, f, obj

from ._common import config_error, core_operator, network_reason, safe_url
from .egress import Refused
from .http import TooLarge, send

DESTINATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "id": {"type": "string"},
        "type": {"type": "string", "enum": ["webhook", "email", "database", "message_queue"]},
        "name": {"type": "string"},
        "enabled": {"type": "boolean"},
        "config": {"type": "object"},
        "on_success": {"type": "boolean"},
        "on_error": {"type": "boolean"},
        "payload_template": {},
    },
}

OUTPUT_ROUTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["destinations"],
    "properties": {
        "data": {},
        "destinations": {"type": "array", "items": DESTINATION_SCHEMA},
        "is_error": {"type": "boolean"},
        "error_message": {"type": ["string", "null"]},
        "metadata": {"type": "object"},
        "parallel": {"type": "boolean"},
        "fail_on_error": {"type": "boolean"},
    },
}


described(OUTPUT_ROUTER_SCHEMA, {
    "data": "what to deliver", "destinations": "[{type: webhook, config: {url, method, headers}, payload_template, ...}]",
    "is_error": "deliver to the destinations marked on_error", "error_message": "the error, for error deliveries",
    "metadata": "sent with the data", "parallel": "deliver to all at once (default true)",
    "fail_on_error": "fail the stage when a delivery fails (default false)",
})


async def _webhook(dest: dict[str, Any], payload: Any) -> dict[str, Any]:
    import asyncio
    import httpx

    cfg = dest.get("config") or {}
    url = cfg.get("url")
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise ValueError("webhook config.url must be an http(s) URL")
    method = str(cfg.get("method") or "POST").upper()
    if method not in ("POST", "PUT", "PATCH"):
        raise ValueError(f"webhook method must be POST, PUT or PATCH, not {method}")
    headers = {str(k): str(v) for k, v in (cfg.get("headers") or {}).items()}
    headers.setdefault("Content-Type", "application/json")
    content = json.dumps(payload, default=str).encode("utf-8")
    attempts = 1 + max(0, int(cfg.get("retry_count", 3)))
    pause = float(cfg.get("retry_delay_ms", 1000)) / 1000
    for attempt in range(attempts):
        try:
            response, raw, _ = await send(method, url, headers=headers, content=content,
                                          timeout_s=float(cfg.get("timeout_ms", 30_000)) / 1000, max_bytes=64 * 1024)
            return {"success": response.is_success, "status_code": response.status_code,
                    "response": raw[:500].decode("utf-8", errors="replace") or None}
        except TooLarge:
            return {"success": True, "status_code": None, "response": "(response larger than 64 KiB, not kept)"}
        except Refused as exc:
            raise ConnectionError(f"{method} {safe_url(url)} refused: {exc}; {exc.hint}") from None
        except httpx.HTTPError as exc:
            if attempt + 1 >= attempts:
                raise ConnectionError(f"{method} {safe_url(url)} failed after {attempts} attempt(s): "
                                      f"{type(exc).__name__}: {network_reason(exc).replace(url, safe_url(url))}") from None
            await asyncio.sleep(pause * 2 ** attempt)
    raise AssertionError("unreachable")  # pragma: no cover


async def _deliver(ctx: Any, dest: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    base = {"destination_id": dest.get("id") or "", "destination_name": dest.get("name") or dest.get("id") or "",
            "destination_type": dest["type"], "success": False, "status_code": None, "response": None, "error": None}
    t0 = time.perf_counter()
    try:
        body: Any = payload
        template = dest.get("payload_template")
        if template is not None:
            body = ctx.render(template, **payload)
            if isinstance(body, str):
                try:
                    body = json.loads(body)
                except ValueError:
                    pass
        if dest["type"] != "webhook":
            raise NotImplementedError(f"destination type '{dest['type']}' is not supported yet; use a webhook")
        base.update(await _webhook(dest, body))
    except Exception as exc:  # noqa: BLE001 - one destination failing is a result, not a stage failure
        base["error"] = str(exc) or type(exc).__name__
    base["duration_ms"] = int(round((time.perf_counter() - t0) * 1000))
    return base


async def route(ctx: Any, destinations: list[dict[str, Any]], payload: dict[str, Any], *, is_error: bool,
                parallel: bool) -> tuple[list[dict[str, Any]], int]:
    """Deliver ``payload`` to the active destinations; returns (results, skipped)."""
    import asyncio

    active = []
    for dest in destinations:
        wanted = dest.get("on_error", False) if is_error else dest.get("on_success", True)
        if dest.get("enabled", True) and wanted:
            active.append(dest)
    if parallel and len(active) > 1:
        results = list(await asyncio.gather(*(_deliver(ctx, d, payload) for d in active)))
    else:
        results = [await _deliver(ctx, d, payload) for d in active]
    return results, len(destinations) - len(active)


def _destinations(ctx: Any, key: str = "destinations") -> list[dict[str, Any]]:
    """Render the lazy destinations (all but each payload_template) and check their shape."""
    from flowmason.kernel.schemas import compile_schema

    raw = ctx.lazy(key)
    if raw is None:
        raise config_error(ctx, key, f"missing required config '{key}'",
                           hint="add a list of destinations, e.g. [{\"type\": \"webhook\", \"config\": {\"url\": ...}}]")
    if isinstance(raw, str):
        raw = ctx.render(raw)
    if not isinstance(raw, list):
        raise config_error(ctx, key, f"must be a list of destinations, got {type(raw).__name__}")
    check = compile_schema(DESTINATION_SCHEMA)
    out = []
    for i, dest in enumerate(raw):
        if not isinstance(dest, dict):
            raise config_error(ctx, f"{key}[{i}]", f"must be an object, got {type(dest).__name__}")
        template = dest.get("payload_template")
        rendered = ctx.render({k: v for k, v in dest.items() if k != "payload_template"})
        err = check.first_error(rendered)
        if err:
            raise config_error(ctx, f"{key}[{i}]", f"destination {err}", hint="see `fm schema --component output-router`")
        if template is not None:
            rendered["payload_template"] = template
        out.append(rendered)
    return out


def _summary(ctx: Any, results: list[dict[str, Any]], total: int, skipped: int, fail_on_error: bool) -> dict[str, Any]:
    ok = sum(1 for r in results if r["success"])
    failed = len(results) - ok
    if fail_on_error and failed:
        names = ", ".join(f"{r['destination_name'] or r['destination_type']}: {r['error'] or r['status_code']}"
                          for r in results if not r["success"])
        raise StageError(f"delivery failed for {failed} destination(s): {names}", stage=ctx.stage.id,
                         field="config.destinations", hint="fix the destination, or set fail_on_error: false")
    return {"total_destinations": total, "successful_deliveries": ok, "failed_deliveries": failed,
            "skipped_deliveries": skipped, "results": results, "all_succeeded": failed == 0}


DELIVERY_RESULTS = f("array", "one {destination_id, destination_name, destination_type, success, status_code, "
                             "response, error, duration_ms} per active destination", items={"type": "object"})

_PAYLOAD_NAMES = ("is_error", "error_message", "metadata", "timestamp")  # besides `data`: see route()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


@core_operator(
    "output-router",
    "Send data to several destinations (webhooks); each delivery's result is reported.",
    OUTPUT_ROUTER_SCHEMA,
    lazy=("destinations",),
    lazy_names=_PAYLOAD_NAMES,
    output_schema=obj("What was delivered where.", {
        "total_destinations": f("integer", "destinations configured"),
        "successful_deliveries": f("integer", "deliveries that succeeded"),
        "failed_deliveries": f("integer", "deliveries that failed"),
        "skipped_deliveries": f("integer", "destinations disabled or not meant for this outcome"),
        "results": DELIVERY_RESULTS,
        "all_succeeded": f("boolean", "no delivery failed"),
    }),
)
async def output_router(ctx: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    destinations = _destinations(ctx)
    is_error = bool(cfg.get("is_error", False))
    payload = {"data": cfg.get("data"), "is_error": is_error, "error_message": cfg.get("error_message"),
               "metadata": cfg.get("metadata") or {}, "timestamp": _now()}
    results, skipped = await route(ctx, destinations, payload, is_error=is_error, parallel=cfg.get("parallel", True))
    return _summary(ctx, results, len(destinations), skipped, bool(cfg.get("fail_on_error", False)))


ERROR_ROUTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error_message", "destinations"],
    "properties": {
        "error_type": {"type": "string"},
        "error_message": {"type": "string"},
        "stage_id": {"type": ["string", "null"]},
        "pipeline_id": {"type": ["string", "null"]},
        "run_id": {"type": ["string", "null"]},
        "destinations": {"type": "array", "items": DESTINATION_SCHEMA},
        "severity": {"type": "string", "enum": ["critical", "error", "warning", "info"]},
        "include_stack_trace": {"type": "boolean"},
    },
}


described(ERROR_ROUTER_SCHEMA, {
    "error_type": "a label for the error (default ERROR)", "error_message": "the error to report",
    "stage_id": "the stage that failed", "pipeline_id": "default: this pipeline", "run_id": "default: this run",
    "destinations": "where to send it (as output-router)", "severity": "critical, error (default), warning or info",
    "include_stack_trace": "accepted for old files",
})


@core_operator(
    "error-router",
    "Send an error notification to destinations (for trycatch catch stages).",
    ERROR_ROUTER_SCHEMA,
    lazy=("destinations",),
    lazy_names=_PAYLOAD_NAMES,
    output_schema=obj("The notifications sent.", {
        "notifications_sent": f("integer", "destinations notified"),
        "failed_notifications": f("integer", "destinations that could not be notified"),
        "results": DELIVERY_RESULTS,
    }),
)
async def error_router(ctx: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    # every destination of an error router is for errors (the earlier one skipped those not marked on_error)
    destinations = [{**d, "on_error": d.get("on_error", True)} for d in _destinations(ctx)]
    severity = cfg.get("severity") or "error"
    error = {
        "error_type": cfg.get("error_type") or "ERROR", "error_message": cfg["error_message"],
        "stage_id": cfg.get("stage_id"), "pipeline_id": cfg.get("pipeline_id") or ctx.pipeline.key,
        "run_id": cfg.get("run_id") or ctx.run.id, "severity": severity, "timestamp": _now(),
    }
    payload = {"data": error, "is_error": True, "error_message": cfg["error_message"],
               "metadata": {"severity": severity}, "timestamp": error["timestamp"]}
    results, _ = await route(ctx, destinations, payload, is_error=True, parallel=True)
    summary = _summary(ctx, results, len(destinations), 0, False)
    return {"notifications_sent": summary["successful_deliveries"],
            "failed_notifications": summary["failed_deliveries"], "results": results}


COMPONENTS = (output_router, error_router)
