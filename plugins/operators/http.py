"""http-request: one HTTP call with httpx, the earlier product's config keys and outputs.

Config (as existing files write it): ``url``, ``method``, ``headers``,
``params`` (or ``query_params``), ``body`` (a dict or list goes as JSON, a
string as-is), ``json`` (always JSON), ``timeout``, ``follow_redirects``,
``verify_ssl``. Outputs: ``status_code``, ``headers``, ``body`` (decoded
JSON when the response is JSON, else text), ``elapsed_ms``, ``success``
(2xx), ``url`` (after redirects).

``timeout`` units: the earlier operator took seconds (1..300) while the
shipped templates write milliseconds (``"timeout": 30000``). Both exist in
users' files, so a ``timeout`` of at most 300 is read as seconds and a
larger one as milliseconds; ``timeout_ms`` is always milliseconds.

A 4xx/5xx response is an output with ``success: false`` (as before), not a
failure, unless ``raise_for_status`` is set. Retries are the engine's job
(the stage's ``retry_config``): this component raises on connection errors
and timeouts with a message naming the method and URL (never credentials,
query strings or headers). Bodies larger than ``max_response_bytes``
(default 10 MiB) are cut off while streaming, with an error saying so.

Non-public targets (loopback, private networks, cloud metadata...) are
refused on servers: ``FM_HTTP_DENY_PRIVATE`` is on by default under ``fm
serve`` and the Lambda functions, off for ``fm run``, and ``FM_HTTP_ALLOW``
lists exceptions. The check is made on the resolved address when the
connection opens, redirects and DNS rebinding included (see ``egress``).
With the guard on, ``HTTP(S)_PROXY`` variables are not used (a proxy would
resolve the name itself); on ``fm run`` a request to a local address logs
which setting governs it.

httpx is imported on the first call, so loading the plugin (every ``fm``
start) stays cheap; SSL contexts are built once per process (loading the CA
bundle costs milliseconds, which a foreach over hundreds of URLs would pay
each time).
"""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from flowmason.kernel.errors import StageError

from flowmason.kernel.outputs import any_value, described, f, obj

from . import egress
from ._common import config_error, core_operator, network_reason, safe_url
from .egress import Connections, Refused

DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
DEFAULT_TIMEOUT_S = 30.0
# the earlier operator's timeout was in seconds with a maximum of 300
_LEGACY_SECONDS_MAX = 300

if TYPE_CHECKING:  # pragma: no cover
    import ssl

_ssl_contexts: dict[bool, "ssl.SSLContext"] = {}


def ssl_context(verify: bool) -> "ssl.SSLContext":
    """One SSL context per process and verify setting."""
    import ssl

    context = _ssl_contexts.get(verify)
    if context is None:
        if verify:
            try:
                import certifi

                context = ssl.create_default_context(cafile=certifi.where())
            except ImportError:  # pragma: no cover - certifi ships with httpx
                context = ssl.create_default_context()
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        _ssl_contexts[verify] = context
    return context


CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "minLength": 1, "description": "http:// or https:// URL"},
        "method": {"type": "string", "pattern": "(?i)^(get|post|put|delete|patch|head|options)$"},
        "headers": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}},
        "params": {"type": "object"},
        "query_params": {"type": "object"},
        "body": {"description": "dict/list sent as JSON, string sent as-is"},
        "json": {"description": "sent as JSON"},
        "timeout": {"type": "number", "exclusiveMinimum": 0,
                    "description": "<= 300: seconds (earlier operator); larger: milliseconds (templates)"},
        "timeout_ms": {"type": "number", "exclusiveMinimum": 0},
        "max_response_bytes": {"type": "integer", "minimum": 1},
        "follow_redirects": {"type": "boolean"},
        "verify_ssl": {"type": "boolean"},
        "raise_for_status": {"type": "boolean"},
        "response_type": {"type": "string", "enum": ["auto", "json", "text"]},
    },
}

described(CONFIG_SCHEMA, {
    "method": "GET (default), POST, PUT, DELETE, PATCH, HEAD or OPTIONS",
    "headers": "request headers, name -> value", "params": "query parameters, name -> value",
    "query_params": "the same as params (older name)", "timeout_ms": "timeout in milliseconds (default 30 s)",
    "max_response_bytes": "a larger body fails the stage (default 10 MiB)",
    "follow_redirects": "follow redirects (default true)", "verify_ssl": "check the server's certificate (default true)",
    "raise_for_status": "fail the stage on a 4xx/5xx status (default false: success is false)",
    "response_type": "auto (default: JSON when it says or looks so), json or text",
})

OUTPUT_SCHEMA: dict[str, Any] = obj("The response.", {
    "status_code": f("integer", "HTTP status code (a 4xx/5xx is an output, not a failure, unless raise_for_status)"),
    "headers": f("object", "response headers, name -> value", additionalProperties={"type": "string"}),
    "body": any_value("the body: decoded JSON when the response is JSON (or looks like it), else text"),
    "elapsed_ms": f("integer", "time to the last byte, in milliseconds"),
    "success": f("boolean", "true for a 2xx status"),
    "url": f("string", "the final URL after redirects (credentials removed)"),
})


def timeout_seconds(cfg: dict[str, Any]) -> float:
    if cfg.get("timeout_ms") is not None:
        return float(cfg["timeout_ms"]) / 1000
    raw = cfg.get("timeout")
    if raw is None:
        return DEFAULT_TIMEOUT_S
    raw = float(raw)
    return raw if raw <= _LEGACY_SECONDS_MAX else raw / 1000


def decode_body(raw: bytes, content_type: str, mode: str) -> Any:
    """JSON when the response says so (or looks like an object/array), else text."""
    charset = "utf-8"
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip('"')
    try:
        text = raw.decode(charset, errors="replace")
    except LookupError:
        text = raw.decode("utf-8", errors="replace")
    if mode == "text":
        return text
    stripped = text.lstrip()
    if mode == "json" or "json" in content_type.lower() or stripped[:1] in ("{", "["):
        try:
            return json.loads(text) if stripped else None
        except ValueError:
            if mode == "json":
                raise
    return text


async def send(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    json_body: Any = None,
    content: bytes | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    follow_redirects: bool = True,
    verify: bool = True,
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    seen: Connections | None = None,
) -> tuple[Any, bytes, float]:
    """Send one request; returns (response, body bytes, elapsed ms).

    Every connection (redirects too) goes through the egress policy, which
    raises ``Refused`` before connecting to an address it does not allow;
    ``seen`` collects the local addresses used while the guard is off.
    Raises ``TooLarge`` past ``max_bytes`` and httpx's own errors otherwise;
    callers turn those into stage errors with their own wording.
    """
    import httpx

    t0 = time.perf_counter()
    guard = egress.policy()
    context = ssl_context(verify)
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=follow_redirects, verify=context,
                                 transport=egress.transport(context, guard, seen or Connections()),
                                 trust_env=not guard.deny_private) as client:
        kwargs: dict[str, Any] = {"headers": headers, "params": params}
        if content is not None:
            kwargs["content"] = content
        elif json_body is not None:
            kwargs["json"] = json_body
        async with client.stream(method, url, **kwargs) as response:
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise TooLarge(int(declared))
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise TooLarge(total)
                chunks.append(chunk)
    return response, b"".join(chunks), (time.perf_counter() - t0) * 1000


class TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _request_parts(ctx: Any, cfg: dict[str, Any]) -> tuple[dict[str, str], Any, bytes | None]:
    headers = {str(k): "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
               for k, v in (cfg.get("headers") or {}).items()}
    json_body = cfg.get("json")
    content: bytes | None = None
    body = cfg.get("body")
    if json_body is None and body is not None:
        if isinstance(body, (dict, list, int, float, bool)):
            json_body = body
        elif isinstance(body, str):
            content = body.encode("utf-8")
        elif isinstance(body, bytes):
            content = body
        else:
            raise config_error(ctx, "body", f"cannot send a body of type {type(body).__name__}",
                               hint="give an object or list (sent as JSON) or a string")
    return headers, json_body, content


@core_operator(
    "http-request",
    "Make an HTTP request; outputs status_code, headers, body (JSON decoded), elapsed_ms, success.",
    CONFIG_SCHEMA,
    output_schema=OUTPUT_SCHEMA,
)
async def http_request(ctx: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    import httpx

    url = str(cfg["url"]).strip()
    if not url.lower().startswith(("http://", "https://")):
        raise config_error(ctx, "url", f"'{safe_url(url)}' is not an http(s) URL",
                           hint="start the URL with http:// or https://")
    method = str(cfg.get("method") or "GET").upper()
    headers, json_body, content = _request_parts(ctx, cfg)
    params = cfg.get("params") if cfg.get("params") is not None else cfg.get("query_params")
    timeout_s = timeout_seconds(cfg)
    max_bytes = int(cfg.get("max_response_bytes") or DEFAULT_MAX_RESPONSE_BYTES)
    where = f"{method} {safe_url(url)}"
    seen = Connections()
    try:
        response, raw, elapsed = await send(
            method, url, headers=headers, params=params, json_body=json_body, content=content, timeout_s=timeout_s,
            follow_redirects=bool(cfg.get("follow_redirects", True)), verify=bool(cfg.get("verify_ssl", True)),
            max_bytes=max_bytes, seen=seen,
        )
    except TooLarge as exc:
        raise StageError(
            f"{where}: response body is larger than max_response_bytes ({max_bytes} bytes; got at least {exc.size})",
            stage=ctx.stage.id, field="config.max_response_bytes",
            hint="raise max_response_bytes or ask the server for less (paging, filters)",
        ) from None
    except Refused as exc:
        raise StageError(f"{where} refused: {exc}", stage=ctx.stage.id, field="config.url", hint=exc.hint) from None
    except httpx.TimeoutException:
        raise StageError(
            f"{where} timed out after {timeout_s * 1000:.0f} ms", stage=ctx.stage.id, field="config.timeout",
            hint="raise timeout_ms, or set the stage's retry_config to try again",
        ) from None
    except httpx.InvalidURL:
        raise config_error(ctx, "url", f"'{safe_url(url)}' is not a valid URL", hint="check the host and port") from None
    except httpx.HTTPError as exc:
        # the URL in the message is ours, without credentials or query
        reason = network_reason(exc).replace(url, safe_url(url))
        raise StageError(
            f"{where} failed: {type(exc).__name__}: {reason}", stage=ctx.stage.id, field="config.url",
            hint="check the URL and that the server is reachable; set retry_config to retry",
        ) from None
    mode = str(cfg.get("response_type") or "auto")
    try:
        body = decode_body(raw, response.headers.get("content-type", ""), mode)
    except ValueError as exc:
        raise StageError(f"{where}: response is not JSON: {exc}", stage=ctx.stage.id, field="config.response_type",
                         hint="set response_type to 'text' or 'auto'") from None
    out = {
        "status_code": response.status_code,
        "headers": dict(response.headers.items()),
        "body": body,
        "elapsed_ms": int(round(elapsed)),
        "success": response.is_success,
        "url": safe_url(str(response.url), keep_query=True),
    }
    ctx.log("info" if response.is_success else "warning", f"{where} -> {response.status_code} in {out['elapsed_ms']} ms")
    for host, kind in seen.local[:1]:
        ctx.log("info", f"{where}: {host} is a non-public address ({kind}), allowed here because FM_HTTP_DENY_PRIVATE is off "
                        "(fm run's default); servers refuse it unless FM_HTTP_ALLOW lists it")
    if cfg.get("raise_for_status") and not response.is_success:
        snippet = raw[:200].decode("utf-8", errors="replace")
        raise StageError(f"{where} returned HTTP {response.status_code}: {snippet}", stage=ctx.stage.id,
                         field="config.raise_for_status",
                         hint="fix the request, or drop raise_for_status and branch on `success`")
    return out
