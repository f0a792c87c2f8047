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
its clients keep working. Starts, logs and tokens carry no ``iteration``:
the executor's listener call does not say which loop iteration emitted
them (the settled events do, from their StageResult). A sub-pipeline's events go to its root run's log
(``run_id`` says which run they belong to; its start and end are
``pipeline.started`` / ``pipeline.<status>``, never final), because the
client follows the run it started.

Writes are group commits, like ``RunRepository``'s: the events of one turn
of the event loop go out together at the end of the turn, as one counter
bump reserving their numbers and one ``batch_put`` of a few items (one item
holds many events, see ``layout``), but no sooner than ``FLUSH_INTERVAL_S``
after the previous write: a chain of async stages settles one stage per
turn, and a write per turn would be a write per stage. Tokens wait up to
``TOKEN_FLUSH_S``, and all the tokens of a stage in that window become one
event, never one item per token. A client polls every half second, so these
delays do not show. The run's last event (finished or suspended) is
written at once. A failing write never fails the run: that batch is
dropped and logged. Events follow the run's retention
(``FM_RUN_RETENTION_DAYS``, kernel/retention.py): the run repository
stamps the expiry on every item of the run's partition when the run ends,
and the events written after that (the final one, by this log) carry the
same expiry, so nothing of an expired run stays behind.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from flowmason.kernel.storage import Store

from .layout import SEQ_FIELD, SEQ_KEY, chunk_row, run_pk

log = logging.getLogger("flowmason.events")

TOKEN_FLUSH_S = 0.1
# events written at most this often while they keep coming (a chain of async stages settles one per turn)
FLUSH_INTERVAL_S = 0.25
GROUP_LIMIT = 500  # a long synchronous stretch still writes every this many events
CHUNK_BYTES = 96 * 1024  # events per stored item, far under the 400 KB item limit
_EVENT_BYTES = 160  # an event's JSON besides its variable parts (names, ids, numbers)
MESSAGE_CHARS = 8_000  # a log line or a coalesced token event is cut (and says so) past this
DATA_BYTES = 32_000

_SETTLED = {"stage.finished", "stage.failed", "stage.skipped", "stage.cancelled"}


def _plain(value: Any) -> tuple[Any, int]:
    """JSON-safe and bounded, with its size: a component's log data must not break (or bloat) the write."""
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = json.dumps(str(value))
    if len(text) > DATA_BYTES:
        return {"__truncated__": True, "size": len(text), "preview": text[:2000]}, 2100
    return json.loads(text), len(text.encode())


def _cut(text: Any) -> str:
    text = text if isinstance(text, str) else str(text)
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + f"… [{len(text) - MESSAGE_CHARS} more characters]"


class EventLog:
    """An executor listener ``(kind, run, stage, data)`` that persists a run's events for live clients.

    One per execution (its sub-pipelines included). ``run_events=False``
    leaves out the run's own start, suspension and end: a fan-out chunk is
    part of a run, not the run, so only its stages' events belong in the
    log. Call ``flush()`` when the host is done with the execution.
    """

    def __init__(self, store: Store, namespace: str = "", *, run_events: bool = True) -> None:
        self.store = store
        self.ns = namespace
        self.run_events = run_events
        self._pending: list[tuple[str, dict[str, Any]]] = []  # (root run id, item data), in order
        self._tokens: dict[tuple[str, str], dict[str, Any]] = {}  # (run id, stage id) -> its open token event
        self._roots: dict[str, str] = {}  # run id -> the run whose log it writes to
        self._expiry: dict[str, float] = {}  # root run id -> when its items expire (set when it finished)
        self._soon = False
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0.0  # when the last flush happened (monotonic)
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
        sid = stage.id if stage is not None else None
        if sid is not None and self._tokens:
            self._tokens.pop((run_id, sid), None)  # what the stage did next comes after its tokens
        if kind in _SETTLED:
            status = data.status.value
            error, size = _plain(data.error) if data.error is not None else (None, 0)
            self._add(root, f"stage.{status}", {
                "run_id": run_id, "stage_id": data.stage_id, "iteration": data.iteration, "status": status,
                "duration_ms": data.duration_ms, "error": error}, size)
        elif kind == "stage.started":
            self._add(root, kind, {"run_id": run_id, "stage_id": sid, "type": stage.component_type})
        elif kind == "stage.log":
            data = data if isinstance(data, dict) else {"message": data}
            extra, size = _plain(data.get("data") or {})
            message = _cut(data.get("message", ""))
            self._add(root, kind, {"run_id": run_id, "stage_id": sid, "level": str(data.get("level") or "info"),
                                   "message": message, "data": extra}, size + len(message))
        elif kind == "stage.retry":
            extra, size = _plain(data)
            self._add(root, kind, {"run_id": run_id, "stage_id": sid, **(extra if isinstance(extra, dict) else {})},
                      size)
        elif kind == "run.started":
            if root != run_id:
                self._add(root, "pipeline.started", {"run_id": run_id,
                                                     "parent_stage_id": run.metadata.get("parent_stage_id")})
            elif self.run_events:
                self._add(root, "run.running", {"run_id": run_id, "status": "running"})
        elif kind == "run.finished":
            from flowmason.kernel.retention import run_expiry

            if root == run_id:
                expires_at = run_expiry(run)
                if expires_at is not None:
                    self._expiry[root] = expires_at
            status = run.status.value
            error, size = _plain(run.error) if run.error is not None else (None, 0)
            body = {"run_id": run_id, "status": status, "error": error}
            if root != run_id:
                self._add(root, f"pipeline.{status}", body, size)
            elif self.run_events:
                self._add(root, f"run.{status}", body, size, final=True)
            else:
                self.flush()
        elif kind == "run.suspended":
            if self.run_events:
                self._add(root, kind, {"run_id": run_id, "reason": (data or {}).get("reason")}, urgent=True)
            else:
                self.flush()
        else:  # a component's own kind (progress, ...)
            extra, size = _plain(data)
            self._add(root, kind, {"run_id": run_id, "stage_id": sid, "data": extra}, size)

    def _token(self, run: Any, stage: Any, text: Any) -> None:
        text = text if isinstance(text, str) else str(text)
        key = (run.id, stage.id if stage is not None else "")
        open_event = self._tokens.get(key)
        if open_event is not None and len(open_event["data"]["text"]) < MESSAGE_CHARS:
            open_event["data"]["text"] += text
            open_event["data"]["tokens"] += 1
            return
        item = {"event": "stage.token", "data": {"run_id": run.id, "stage_id": key[1] or None, "text": text, "tokens": 1},
                "at": time.time()}
        self._tokens[key] = item
        # a token event grows until the flush: count it at the most it may hold
        self._pending.append((self._roots.get(run.id, run.id), item, MESSAGE_CHARS * 4))
        if not self._soon and self._timer is None:
            self._schedule(TOKEN_FLUSH_S)

    # -- group commit --
    def _add(self, root: str, event: str, data: dict[str, Any], size: int = 0, *, final: bool = False,
             urgent: bool = False) -> None:
        item = {"event": event, "data": data, "at": time.time()}
        if final:
            item["final"] = True
        self._pending.append((root, item, size))
        if final or urgent or len(self._pending) >= GROUP_LIMIT:
            self.flush()  # the stream ends on the final event: do not leave it to a later turn
        elif not self._soon and self._timer is None:
            self._schedule(self._last + FLUSH_INTERVAL_S - time.monotonic())

    def _schedule(self, wait: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: nothing to group with
            self.flush()
            return
        if wait <= 0:  # the first event after a quiet spell goes out when this turn ends
            self._soon = True
            loop.call_soon(self.flush)
        else:
            self._timer = loop.call_later(wait, self.flush)

    def flush(self) -> None:
        """Write the pending events: per run one counter bump for their numbers, then one batch of chunks."""
        self._soon = False
        self._last = time.monotonic()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._tokens.clear()
        pending, self._pending = self._pending, []
        if not pending:
            return
        by_run: dict[str, list[tuple[dict[str, Any], int]]] = {}
        for root, item, size in pending:
            by_run.setdefault(root, []).append((item, size))
        rows: list[tuple[str, str, dict[str, Any]]] = []
        try:
            late: list[tuple[tuple[str, str, dict[str, Any]], float]] = []  # written after the run ended
            for root, items in by_run.items():
                pk = run_pk(self.ns, root)
                expires_at = self._expiry.pop(root, None)
                seq = self.store.increment(pk, SEQ_KEY, SEQ_FIELD, len(items), expires_at=expires_at) - len(items) + 1
                first_row = len(rows)
                chunk: list[dict[str, Any]] = []
                budget = 0
                for item, size in items:
                    cost = _EVENT_BYTES + size
                    if chunk and budget + cost > CHUNK_BYTES:
                        rows.append(chunk_row(pk, seq, chunk))
                        seq += len(chunk)
                        chunk, budget = [], 0
                    chunk.append(item)
                    budget += cost
                rows.append(chunk_row(pk, seq, chunk))
                if expires_at is not None:
                    late += [(row, expires_at) for row in rows[first_row:]]
                    del rows[first_row:]
            self.store.batch_put(rows)
            for (row_pk, sk, data), expires_at in late:  # one or two items: the run's last events
                self.store.put(row_pk, sk, data, expires_at=expires_at)
            self.written += len(pending)
        except Exception as exc:  # noqa: BLE001 - losing live events must not fail the run they describe
            self.dropped += len(pending)
            log.warning("dropped %d run events: %s: %s", len(pending), type(exc).__name__, exc)
