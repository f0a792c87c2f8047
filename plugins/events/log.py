"""The event log: what a live client of a run needs, persisted by the host that runs it.

A host (the durable engine behind ``fm serve`` and the Lambda worker)
passes an ``EventLog`` to the ``Execution`` as a listener. It keeps what
the stage results do not already hold, so a client on another process can
follow the run as it happens (``GET /runs/{id}/events``):

    executor event          stored as (the SSE event name)   data
    run.started             run.running                      run_id, status
    stage.started           stage.started                    run_id, stage_id, type
    stage.log               stage.log                        run_id, stage_id, level, message, data
    stage.token             stage.token (coalesced)          run_id, stage_id, text, tokens
    stage.retry             stage.retry                      run_id, stage_id, attempt, delay_s, error
    stage.finished/failed/  stage.completed/failed/          run_id, stage_id, iteration, status,
      skipped/cancelled       skipped/cancelled                duration_ms, error (not the output:
                                                               it stays in the stage result)
    run.suspended           run.suspended                    run_id, reason
    run.finished            run.completed/failed/cancelled   run_id, status, error   (final)
    anything else (ctx.emit) its own kind                    run_id, stage_id, data

The settled names are the ones the stream used before there was a log, so
its clients keep working. A sub-pipeline's events go to its root run's log
(``run_id`` says which run they belong to; its start and end are
``pipeline.started`` / ``pipeline.<status>``, never final), because the
client follows the run it started.

Writes are group commits, like ``RunRepository``'s: the events of one turn
of the event loop go out together at the end of the turn (a counter bump
reserving their numbers, then one ``batch_put``); tokens wait up to
``TOKEN_FLUSH_S`` and all the tokens of a stage in that window become one
event, never one item per token. The run's last event (finished or
suspended) is written at once. A failing write never fails the run: that
batch is dropped and logged. Event items do not expire: run records and
stage results have no retention either, and ``batch_put`` writes items
without an expiry; when runs get a retention, events should follow it.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from flowmason.kernel.storage import Store

from .layout import SEQ_FIELD, SEQ_KEY, event_sk, run_pk

log = logging.getLogger("flowmason.events")

TOKEN_FLUSH_S = 0.1
GROUP_LIMIT = 500  # a long synchronous stretch still writes every this many events
MESSAGE_CHARS = 8_000  # a log line or a coalesced token event is cut (and says so) past this
DATA_BYTES = 32_000

_SETTLED = {"stage.finished", "stage.failed", "stage.skipped", "stage.cancelled"}


def _plain(value: Any) -> Any:
    """JSON-safe and bounded: a component's log data must not break (or bloat) the write."""
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = json.dumps(str(value))
    if len(text) > DATA_BYTES:
        return {"__truncated__": True, "size": len(text), "preview": text[:2000]}
    return json.loads(text)


def _cut(text: Any) -> str:
    text = text if isinstance(text, str) else str(text)
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + f"… [{len(text) - MESSAGE_CHARS} more characters]"


class EventLog:
    """An executor listener ``(kind, run, stage, data)`` that persists a run's events for live clients.

    ``run_events=False`` leaves out the run's own start (a fan-out chunk
    is part of a run, not a run). Call ``flush()`` when the host is done
    with the execution (the last events of a run parked from outside).
    """

    def __init__(self, store: Store, namespace: str = "", *, run_events: bool = True) -> None:
        self.store = store
        self.ns = namespace
        self.run_events = run_events
        self._pending: list[tuple[str, dict[str, Any]]] = []  # (root run id, item data), in order
        self._tokens: dict[tuple[str, str], dict[str, Any]] = {}  # (run id, stage id) -> its open token event
        self._roots: dict[str, str] = {}  # run id -> the run whose log it writes to
        self._soon = False
        self._timer: asyncio.TimerHandle | None = None
        self.written = 0
        self.dropped = 0

    @classmethod
    def for_host(cls, store: Store, namespace: str = "", **options: Any) -> "EventLog | None":
        """The event log a host installs, or None when the events plugin is not loaded (``FM_PLUGINS=-events``)."""
        from flowmason.kernel.plugins import get_plugin_manager

        if not get_plugin_manager().has_plugin("events"):
            return None
        return cls(store, namespace, **options)

    # -- the listener --
    def __call__(self, kind: str, run: Any, stage: Any, data: Any) -> None:
        if kind == "stage.token":
            self._token(run, stage, data)
            return
        run_id = run.id
        root = self._roots.get(run_id)
        if root is None:
            parent = run.metadata.get("parent_run_id")
            root = self._roots.get(parent, run_id) if parent else run_id
            self._roots[run_id] = root
        child = root != run_id
        sid = stage.id if stage is not None else None
        if sid is not None:
            self._tokens.pop((run_id, sid), None)  # what the stage did next comes after its tokens
        base: dict[str, Any] = {"run_id": run_id}
        if kind in _SETTLED:
            status = data.status.value
            self._add(root, f"stage.{status}", {
                **base, "stage_id": data.stage_id, "iteration": data.iteration, "status": status,
                "duration_ms": data.duration_ms, "error": _plain(data.error)})
        elif kind == "stage.started":
            self._add(root, kind, {**base, "stage_id": sid, "type": stage.component_type})
        elif kind == "stage.log":
            data = data if isinstance(data, dict) else {"message": data}
            self._add(root, kind, {**base, "stage_id": sid, "level": str(data.get("level") or "info"),
                                   "message": _cut(data.get("message", "")), "data": _plain(data.get("data") or {})})
        elif kind == "stage.retry":
            self._add(root, kind, {**base, "stage_id": sid, **_plain(data)})
        elif kind == "run.started":
            if child:
                self._add(root, "pipeline.started", {**base, "parent_stage_id": run.metadata.get("parent_stage_id")})
            elif self.run_events:
                self._add(root, "run.running", {**base, "status": "running"})
        elif kind == "run.finished":
            status = run.status.value
            body = {**base, "status": status, "error": _plain(run.error)}
            if child:
                self._add(root, f"pipeline.{status}", body)
            else:
                self._add(root, f"run.{status}", body, final=True)
                self._roots.pop(run_id, None)
        elif kind == "run.suspended":
            self._add(root, kind, {**base, "reason": (data or {}).get("reason")}, urgent=True)
        else:  # a component's own kind (progress, ...)
            self._add(root, kind, {**base, "stage_id": sid, "data": _plain(data)})

    def _token(self, run: Any, stage: Any, text: Any) -> None:
        key = (run.id, stage.id if stage is not None else "")
        open_event = self._tokens.get(key)
        if open_event is not None and len(open_event["data"]["text"]) < MESSAGE_CHARS:
            open_event["data"]["text"] += text if isinstance(text, str) else str(text)
            open_event["data"]["tokens"] += 1
            return
        root = self._roots.get(run.id, run.id)
        item = self._item("stage.token", {"run_id": run.id, "stage_id": key[1] or None,
                                          "text": text if isinstance(text, str) else str(text), "tokens": 1})
        self._tokens[key] = item
        self._pending.append((root, item))
        self._schedule(later=True)

    # -- group commit --
    @staticmethod
    def _item(event: str, data: dict[str, Any], final: bool = False) -> dict[str, Any]:
        item = {"event": event, "data": data, "at": time.time()}
        if final:
            item["final"] = True
        return item

    def _add(self, root: str, event: str, data: dict[str, Any], *, final: bool = False, urgent: bool = False) -> None:
        self._pending.append((root, self._item(event, data, final)))
        if final or urgent or len(self._pending) >= GROUP_LIMIT:
            self.flush()  # the stream ends on the final event: do not leave it to a later turn
        else:
            self._schedule(later=False)

    def _schedule(self, *, later: bool) -> None:
        if self._soon:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: nothing to group with
            self.flush()
            return
        if later:
            if self._timer is None:
                self._timer = loop.call_later(TOKEN_FLUSH_S, self.flush)
            return
        self._soon = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the pending events: per run one counter bump for their numbers, then one batch."""
        self._soon = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._tokens.clear()
        pending, self._pending = self._pending, []
        if not pending:
            return
        by_run: dict[str, list[dict[str, Any]]] = {}
        for root, item in pending:
            by_run.setdefault(root, []).append(item)
        rows: list[tuple[str, str, dict[str, Any]]] = []
        try:
            for root, items in by_run.items():
                pk = run_pk(self.ns, root)
                last = self.store.increment(pk, SEQ_KEY, SEQ_FIELD, len(items))
                first = last - len(items) + 1
                rows.extend((pk, event_sk(first + i), item) for i, item in enumerate(items))
            self.store.batch_put(rows)
            self.written += len(rows)
        except Exception as exc:  # noqa: BLE001 - losing live events must not fail the run they describe
            self.dropped += len(pending)
            log.warning("dropped %d run events: %s: %s", len(pending), type(exc).__name__, exc)

