"""Running stored runs from queue messages: the worker's logic, free of Lambda and SQS.

The HTTP API stores a run (status ``pending``, with a snapshot of the
pipeline it runs) and sends a message ``{"kind": "run", "run_id", "org"}``
to a ``Queue``. Whoever consumes the queue calls ``Jobs.handle(message)``:
the worker Lambda (SQS), the local stack's poller, or ``fm serve``'s
in-process queue. Everything that makes a run survive a crash lives here:

- **Checkpoints.** The executor records every finished stage through
  ``RunRepository`` (one item per stage). A delivery of a run that already
  started resumes from ``RunRepository.checkpoint``: finished main-graph
  stages are not run again (idempotency keyed on run and stage). A stage
  that was in flight when a worker died runs again: it never finished.
- **One worker per run.** A lease item (``run#ID / lease``, written
  if-absent with an expiry at the end of the invocation) keeps a duplicate
  delivery from running the same run twice at once; a run message that
  finds the lease taken comes back later with a growing delay (it may be a
  fan-out's join racing the worker that fanned out), a chunk message is
  dropped (the holder writes the chunk's result, or its message returns).
- **Time limits.** With a deadline (Lambda's remaining time minus a
  margin), a run still going at the deadline is cancelled *without*
  recording it as cancelled, and a continuation message is sent; the next
  invocation resumes after the last finished stage.
- **Fan-out.** A main-graph ``foreach`` over many items (at least
  ``fanout_min_items``, or ``"distributed": true`` in its config) is split
  into chunk messages of ``chunk_size`` items (``"fanout_chunk_size"`` in
  the config overrides). The run suspends; each chunk delivery runs the
  loop stages for its items with the stock ``foreach`` component and writes
  its result once (if-absent), then bumps an atomic counter; the delivery
  that brings the counter to the number of chunks checks the done markers
  and sends a continuation, which joins the chunk results in order into
  the foreach stage's output. A re-delivered chunk skips the items whose
  iteration was already recorded, so every item runs once.
- **Cancellation.** ``request_cancel`` writes a flag; a running worker
  polls it and cancels the execution (recorded as cancelled).
- **Dead letters.** ``dead_letter`` marks a run whose message kept failing
  as failed, with the last error the worker saw.

A Queue is anything with ``send(body, delay_s=0)`` and
``send_many(bodies)``. No AWS SDK is imported here.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
import uuid
from collections import ChainMap
from dataclasses import dataclass
from typing import Any, Protocol

from flowmason.kernel.errors import (
    ConditionFailedError,
    FlowMasonError,
    InputError,
    NotFoundError,
    StageError,
    StorageError,
)
from flowmason.kernel.model import Pipeline, Run, RunStatus, StageResult, StageStatus, parse_pipeline
from flowmason.kernel.runs import RunRepository, namespace
from flowmason.kernel.storage import MAX_ITEM_BYTES, Store

log = logging.getLogger("flowmason.worker")

TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})
MAX_CONTINUATIONS = int(os.environ.get("FM_MAX_CONTINUATIONS", "200"))
CANCEL_POLL_S = float(os.environ.get("FM_CANCEL_POLL_S", "1.0"))
DEFAULT_LEASE_S = 900.0  # Lambda's longest timeout
# inputs share the run item with its bookkeeping; keep well under the item limit
MAX_INPUT_BYTES = MAX_ITEM_BYTES // 2
_STAGE_EVENTS = ("fm_stage_started", "fm_stage_finished", "fm_stage_failed", "fm_stage_skipped")
FLUSH_EVERY = 50
BUSY_RETRIES = 8  # a run message that finds the run leased comes back after 1, 2, 4 ... 60 s  # fan-out iterations recorded per batch write


class Queue(Protocol):
    def send(self, body: dict[str, Any], *, delay_s: int = 0) -> None: ...

    def send_many(self, bodies: list[dict[str, Any]]) -> None: ...


class Suspended(BaseException):
    """Ends an execution without recording it as finished (fan-out wait, chunk done).

    A BaseException on purpose: the executor turns ``Exception`` into a
    failed stage, but lets this one through untouched.
    """


def run_message(org: str, run_id: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "run", "run_id": run_id, "org": org, **extra}


def _pk(org: str, run_id: str) -> str:
    return f"{namespace(org)}run#{run_id}"


# -- starting and cancelling (used by the API) --


def create_run(
    store: Store, org: str, pipeline: Pipeline, definition: dict[str, Any], inputs: dict[str, Any], *,
    version: int | None = None, created_by: str | None = None,
) -> Run:
    """Store a pending run and the exact pipeline it will run; the caller enqueues it."""
    size = len(json.dumps(inputs, default=str).encode())
    if size > MAX_INPUT_BYTES:
        raise InputError(
            f"inputs are {size} bytes; a stored run takes at most {MAX_INPUT_BYTES}", field="inputs",
            hint="pass large data by reference (a URL or a key) instead of inline",
        )
    run = Run(
        pipeline_id=pipeline.key, pipeline_name=pipeline.name,
        pipeline_version=str(version) if version is not None else pipeline.version,
        inputs=inputs, metadata={"org": org, "created_by": created_by, "pipeline_label": pipeline.version},
    )
    store.put(_pk(org, run.id), "pipeline", {"definition": definition, "version": version})
    RunRepository(store, namespace(org)).run_started(run)
    return run


def request_cancel(store: Store, org: str, run_id: str) -> Run:
    """Ask for a run to stop. A pending run is cancelled at once; a running one at its next poll."""
    repo = RunRepository(store, namespace(org))
    run = repo.get_run(run_id)
    if run.status in TERMINAL:
        return run
    store.put(_pk(org, run_id), "cancel", {"at": time.time()})
    if run.status is RunStatus.PENDING:
        _finish_cancelled(repo, run)
    return run


def _finish_cancelled(repo: RunRepository, run: Run) -> None:
    run.status = RunStatus.CANCELLED
    run.error = {"code": "cancelled", "message": "the run was cancelled"}
    run.finished_at = time.time()
    repo.run_finished(run)


# -- the recorder the worker gives the executor --


class _Recorder:
    """RunRepository, minus the writes that would misstate a run that is only pausing.

    A run paused at a deadline or for a fan-out is cancelled inside this
    process, but it is not cancelled: its stored status stays ``running``.
    In chunk mode only the loop iterations are stored.
    """

    def __init__(self, repo: RunRepository, *, chunk_mode: bool = False) -> None:
        self.chunk_mode = chunk_mode
        self.buffer = _WriteBehind(repo.store) if chunk_mode else None
        # chunk iterations go through the write-behind store; everything else straight to the store
        self.repo = RunRepository(self.buffer, repo.ns) if self.buffer is not None else repo  # type: ignore[arg-type]
        self.pausing = False
        self.storage_error: StorageError | None = None

    def flush(self) -> None:
        if self.buffer is not None:
            self.buffer.flush()

    def run_started(self, run: Run) -> None:
        if not self.chunk_mode:
            self.repo.run_started(run)

    def stage_recorded(self, run: Run, result: StageResult) -> None:
        if self.chunk_mode and result.iteration is None:
            return
        if self.pausing and result.status is StageStatus.CANCELLED:
            return
        try:
            self.repo.stage_recorded(run, result)
            if self.buffer is not None and len(self.buffer.items) >= FLUSH_EVERY:
                self.buffer.flush()
        except StorageError as exc:
            self.storage_error = exc
            raise

    def run_finished(self, run: Run) -> None:
        if self.chunk_mode or self.pausing or self.storage_error is not None:
            return
        if run.started_at and run.finished_at:  # across invocations, not just the last one
            run.duration_ms = (run.finished_at - run.started_at) * 1000
        self.repo.run_finished(run)


class _WriteBehind:
    """A Store whose plain puts are collected and written in batches (``batch_put``).

    A fan-out chunk records hundreds of small iteration results; one
    request each would dominate its time. They are flushed every
    ``FLUSH_EVERY`` iterations, when the invocation pauses, and before the
    chunk's result is written, so a chunk cut short by its deadline skips
    every recorded item when it continues; a worker killed outright re-runs
    at most the unflushed ``FLUSH_EVERY`` items of its chunk.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.items: list[tuple[str, str, dict[str, Any]]] = []

    def put(self, pk: str, sk: str, data: dict[str, Any], **conditions: Any) -> int:
        if any(conditions.values()):
            return self.store.put(pk, sk, data, **conditions)
        json.dumps(data)  # TypeError now, as the store would raise it, so RunRepository makes it JSON-safe
        self.items.append((pk, sk, data))
        return 0

    def flush(self) -> None:
        items, self.items = self.items, []
        if items:
            self.store.batch_put(items)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@dataclass
class _Job:
    org: str
    run_id: str
    recorder: _Recorder
    chunk: tuple[str, int] | None = None  # (foreach stage id, chunk number) in chunk mode
    retry: bool = False


class Jobs:
    """Handles queue messages against one store and one queue."""

    def __init__(
        self, store: Store, queue: Queue, *, fanout_min_items: int | None = 1000, chunk_size: int = 100,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        self.store = store
        self.queue = queue
        self.fanout_min_items = fanout_min_items
        self.chunk_size = max(1, chunk_size)
        self.lease_s = lease_s
        self.owner = uuid.uuid4().hex

    # -- entry points --
    async def handle(self, body: dict[str, Any], *, deadline: float | None = None, receive_count: int = 1) -> str:
        """Process one message; returns what happened. Raises on infrastructure errors (retry)."""
        kind = body.get("kind", "run")
        org, run_id = str(body.get("org") or ""), str(body.get("run_id") or "")
        if not org or not run_id:
            log.error("dropping a message without org or run_id: %s", list(body))
            return "dropped"
        try:
            if kind == "chunk":
                return await self._chunk(body, org, run_id, deadline, receive_count)
            return await self._run(body, org, run_id, deadline)
        except NotFoundError:
            log.warning("dropping a message for unknown run %s", run_id)
            return "dropped"
        except BaseException as exc:  # a crash too: the invocation dies and the message comes back
            # remembered so the dead-letter handler can say why the run kept failing
            try:
                self.store.put(_pk(org, run_id), "worker_error", {
                    "message": f"{type(exc).__name__}: {exc}", "at": time.time(), "receive_count": receive_count})
            except Exception:  # noqa: BLE001 - the store itself may be what failed
                pass
            raise

    def dead_letter(self, body: dict[str, Any]) -> str:
        """A message that exhausted its deliveries: mark its run failed with the last error seen."""
        org, run_id = str(body.get("org") or ""), str(body.get("run_id") or "")
        repo = RunRepository(self.store, namespace(org))
        try:
            run = repo.get_run(run_id)
        except NotFoundError:
            return "dropped"
        if run.status in TERMINAL:
            return "already-finished"
        last = self.store.get(_pk(org, run_id), "worker_error")
        reason = last.data.get("message") if last else "unknown (no error was recorded)"
        run.status = RunStatus.FAILED
        run.finished_at = time.time()
        run.error = {"code": "dead_letter", "message": f"the run's message failed every delivery; last error: {reason}",
                     "pipeline": run.pipeline_id, "stage": None, "field": None,
                     "hint": "fix the cause and start the run again"}
        repo.run_finished(run)
        return "failed"

    # -- leases --
    def _lease(self, pk: str, sk: str, deadline: float | None) -> bool:
        seconds = self.lease_s if deadline is None else max(1.0, deadline - time.monotonic() + 1.0)
        try:
            self.store.put(pk, sk, {"owner": self.owner}, if_absent=True, expires_at=time.time() + seconds)
            return True
        except ConditionFailedError:
            return False

    # -- a whole run (or its continuation) --
    async def _run(self, body: dict[str, Any], org: str, run_id: str, deadline: float | None) -> str:
        repo = RunRepository(self.store, namespace(org))
        pk = _pk(org, run_id)
        run = repo.get_run(run_id)
        if run.status in TERMINAL:
            return "already-finished"
        if self.store.get(pk, "cancel") is not None:
            _finish_cancelled(repo, run)
            return "cancelled"
        continuation = int(body.get("continuation", 0))
        if continuation > MAX_CONTINUATIONS:
            run.status = RunStatus.FAILED
            run.finished_at = time.time()
            run.error = {"code": "too_many_continuations", "message": f"the run was continued {continuation} times",
                         "pipeline": run.pipeline_id, "stage": None, "field": None,
                         "hint": "a stage probably takes longer than the worker's time limit; make it smaller"}
            repo.run_finished(run)
            return "failed"
        if not self._lease(pk, "lease", deadline):
            # Another worker holds the run. Usually a duplicate delivery, but it can also be a fan-out's
            # join arriving while the worker that fanned out is still winding down: try again later.
            tries = int(body.get("busy", 0))
            if tries < BUSY_RETRIES:
                self.queue.send({**body, "busy": tries + 1}, delay_s=min(60, 2 ** tries))
                return "busy-retry"
            return "busy"
        try:
            job = _Job(org, run_id, _Recorder(repo))
            outcome = await self._execute(job, run, repo, deadline)
            if outcome == "paused":
                self.queue.send(run_message(org, run_id, continuation=continuation + 1))
                return "continued"
            return outcome
        finally:
            self.store.delete(pk, "lease")

    # -- one chunk of a fan-out --
    async def _chunk(self, body: dict[str, Any], org: str, run_id: str, deadline: float | None, receive_count: int) -> str:
        sid, number = str(body["stage"]), int(body["chunk"])
        repo = RunRepository(self.store, namespace(org))
        pk = _pk(org, run_id)
        if self.store.get(pk, _fkey(sid, "out", number)) is not None:
            self._maybe_join(org, run_id, sid, number)
            return "chunk-already-done"
        run = repo.get_run(run_id)
        if run.status in TERMINAL:
            return "already-finished"
        if not self._lease(pk, f"lease#{sid}#{number}", deadline):
            return "busy"
        try:
            job = _Job(org, run_id, _Recorder(repo, chunk_mode=True), chunk=(sid, number),
                       retry=receive_count > 1 or bool(body.get("continuation")))
            if self.store.get(pk, "cancel") is not None:
                self._chunk_done(job, {"error": {"code": "cancelled", "message": "the run was cancelled"}})
                return "cancelled"
            outcome = await self._execute(job, run, repo, deadline)
            if outcome == "paused":
                self.queue.send({**body, "continuation": int(body.get("continuation", 0)) + 1})
                return "continued"
            if outcome != "chunk-done":
                # cancelled, or failed before the loop ran: still a result, so the join happens and settles the run
                self._chunk_done(job, {"error": run.error or {"code": outcome, "message": f"the chunk ended {outcome}"}})
            return outcome
        finally:
            self.store.delete(pk, f"lease#{sid}#{number}")

    # -- the execution shared by both --
    async def _execute(self, job: _Job, run: Run, repo: RunRepository, deadline: float | None) -> str:
        from flowmason.kernel.executor import Execution
        from flowmason.kernel.plan import compile_plan
        from flowmason.kernel.plugins import get_registry

        pk = _pk(job.org, job.run_id)
        snap = self.store.get(pk, "pipeline")
        if snap is None:
            raise NotFoundError(f"run '{job.run_id}' has no stored pipeline", field="run_id")
        pipeline = parse_pipeline(snap.data["definition"], source=run.pipeline_id)
        components = get_registry().components
        if "foreach" in components and (self.fanout_min_items is not None or job.chunk is not None):
            components = ChainMap({"foreach": self._fanout_component(components["foreach"], job)}, components)
        plan = compile_plan(pipeline, components)
        resume = _checkpoint(self.store, repo, plan, job.run_id)
        if job.chunk is not None:
            resume = self._chunk_resume(plan, resume, job.chunk[0])
        loader = _loader(self.store, job.org)
        hooks = None
        if job.chunk is not None:
            # a chunk is part of a run, not a run: stage events yes, run started/finished no
            from flowmason.kernel.plugins import get_plugin_manager

            pm = get_plugin_manager()
            hooks = {name: getattr(pm.hook, name) for name in _STAGE_EVENTS if getattr(pm.hook, name).get_hookimpls()}
        # events (issue 10 item 4): the run's live events for /runs/{id}/events; carry over when this moves
        from flowmason.plugins.events import EventLog

        events = EventLog.for_host(self.store, repo.ns, run_events=job.chunk is None)
        ex = Execution(plan, run=run, recorder=job.recorder, resume=resume, loader=loader, hooks=hooks,
                       listeners=[events] if events else None)
        task = asyncio.ensure_future(ex.execute())
        watcher = asyncio.ensure_future(self._watch_cancel(pk, ex, task))
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                # the deadline: stop here without recording the run as cancelled; resume later
                job.recorder.pausing = True
                ex.suspend("deadline")  # events (issue 10 item 4): parked, so the log says suspended, not cancelled
                await asyncio.gather(task, return_exceptions=True)
                return "paused"
            try:
                task.result()
            except Suspended as why:
                return str(why) or "suspended"
            except FlowMasonError:
                if job.recorder.storage_error is not None:
                    raise job.recorder.storage_error from None
                return run.status.value
            return run.status.value
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            if job.recorder.storage_error is None:
                job.recorder.flush()
            if events is not None:  # events (issue 10 item 4)
                events.flush()

    async def _watch_cancel(self, pk: str, ex: Any, task: asyncio.Future) -> None:
        for _ in range(10_000_000):  # bounded; ends with the execution (cancelled by _execute)
            await asyncio.sleep(CANCEL_POLL_S)
            if task.done():
                return
            if await asyncio.to_thread(self.store.get, pk, "cancel") is not None:
                task.cancel()
                return

    # -- fan-out --
    def _fanout_component(self, original: Any, job: _Job) -> Any:
        """The stock foreach, spread over chunk messages when the item count calls for it."""
        from flowmason.kernel.components import Component

        jobs = self

        async def fn(ctx: Any) -> Any:
            items = ctx.config.get("items")
            main_graph = ctx.graph.label is None
            if job.chunk is not None and main_graph and ctx.stage.id == job.chunk[0]:
                return await jobs._run_chunk(ctx, original, job)
            if not main_graph or not isinstance(items, (list, tuple)) or not jobs._wants_fanout(ctx, items):
                return await original.call(ctx)
            return jobs._fan_out_or_join(ctx, job, list(items))

        return Component(name=original.name, kind=original.kind, fn=fn, description=original.description,
                         config_schema=original.config_schema, output_schema=original.output_schema,
                         governs=original.governs, owns=original.owns, lazy=original.lazy, category=original.category)

    def _wants_fanout(self, ctx: Any, items: list[Any]) -> bool:
        flag = ctx.config.get("distributed")
        if flag is not None:
            return bool(flag) and len(items) > 0
        return self.fanout_min_items is not None and len(items) >= self.fanout_min_items

    def _chunk_size(self, ctx: Any) -> int:
        size = ctx.config.get("fanout_chunk_size")
        return max(1, int(size)) if size else self.chunk_size

    def _fan_out_or_join(self, ctx: Any, job: _Job, items: list[Any]) -> Any:
        sid = ctx.stage.id
        pk = _pk(job.org, job.run_id)
        meta = self.store.get(pk, _fkey(sid, "meta"))
        if meta is None:
            size = self._chunk_size(ctx)
            meta_data = {"chunks": math.ceil(len(items) / size), "size": size, "total": len(items), "dispatched": False}
            try:
                self.store.put(pk, _fkey(sid, "meta"), meta_data, if_absent=True)
            except ConditionFailedError:  # a duplicate delivery planned it first
                meta_data = self.store.get(pk, _fkey(sid, "meta")).data  # type: ignore[union-attr]
        else:
            meta_data = meta.data
            if self._chunks_done(pk, sid, meta_data["chunks"]):
                return self._join(pk, sid, meta_data["chunks"])
        if not meta_data.get("dispatched"):
            # sent again after a crash between the meta write and the sends: duplicates are harmless
            self.queue.send_many([
                {"kind": "chunk", "run_id": job.run_id, "org": job.org, "stage": sid, "chunk": n}
                for n in range(meta_data["chunks"])
            ])
            self.store.put(pk, _fkey(sid, "meta"), {**meta_data, "dispatched": True})
        job.recorder.pausing = True
        raise Suspended("fanned-out")

    async def _run_chunk(self, ctx: Any, original: Any, job: _Job) -> Any:
        sid, number = job.chunk  # type: ignore[misc]
        pk = _pk(job.org, job.run_id)
        meta = self.store.get(pk, _fkey(sid, "meta"))
        if meta is None:
            raise NotFoundError(f"fan-out of stage '{sid}' has no plan", stage=sid)
        size = meta.data["size"]
        items = list(ctx.config.get("items") or [])[number * size:(number + 1) * size]
        done: dict[str, Any] = {}
        loop_ids = _ids(ctx.config.get("loop_stages"))
        if job.retry and loop_ids:
            done = self._finished_iterations(pk, loop_ids[-1], number * size, len(items))
        view = _ChunkContext(ctx, items, number * size, done)
        try:
            out = await original.call(view)
            for err in out.get("errors") or []:
                err["index"] = err.get("index", 0) + number * size
            result: dict[str, Any] = {"output": out}
        except FlowMasonError as exc:
            result = {"error": exc.to_dict()}
        job.recorder.flush()  # the items' records before the chunk's result: a retry must see them
        self._chunk_done(job, result)
        job.recorder.pausing = True
        raise Suspended("chunk-done")

    def _finished_iterations(self, pk: str, last: str, start: int, count: int) -> dict[str, Any]:
        """Outputs of the iterations of this chunk whose last loop stage already completed."""
        wanted = {str(i) for i in range(start, start + count)}
        out: dict[str, Any] = {}
        cursor = None
        for _ in range(100_000):
            page = self.store.query(pk, prefix=f"stage#{last}#", limit=500, cursor=cursor)
            for item in page.items:
                label = item.data.get("iteration")
                if label in wanted and item.data.get("status") == StageStatus.COMPLETED.value:
                    out[label] = item.data.get("output")
            cursor = page.cursor
            if not cursor:
                break
        return out

    def _chunk_done(self, job: _Job, result: dict[str, Any]) -> None:
        sid, number = job.chunk  # type: ignore[misc]
        pk = _pk(job.org, job.run_id)
        try:
            self.store.put(pk, _fkey(sid, "out", number), result, if_absent=True)
        except ConditionFailedError:
            pass  # a duplicate delivery got there first; its result stands
        self._maybe_join(job.org, job.run_id, sid, number)

    def _maybe_join(self, org: str, run_id: str, sid: str, number: int) -> None:
        """Mark chunk ``number`` done and count it; at the last count, verify the markers and send the join.

        The marker is written after the result (two puts, not a
        transaction: moto copies the whole table per transaction item), and a
        re-delivered chunk whose result exists comes through here again, so
        a marker or a count lost to a crash is made up; over-counting is
        harmless because the markers are checked.
        """
        pk = _pk(org, run_id)
        try:
            self.store.put(pk, _fkey(sid, "done", number), {"at": time.time()}, if_absent=True)
        except ConditionFailedError:
            pass
        meta = self.store.get(pk, _fkey(sid, "meta"))
        if meta is None:
            return
        chunks = meta.data["chunks"]
        n = self.store.increment(pk, _fkey(sid, "count"))
        if n >= chunks and self._chunks_done(pk, sid, chunks):
            self.queue.send(run_message(org, run_id, join=sid))

    def _chunks_done(self, pk: str, sid: str, chunks: int) -> bool:
        seen = 0
        cursor = None
        for _ in range(100_000):
            page = self.store.query(pk, prefix=_fkey(sid, "done") + "#", limit=1000, cursor=cursor)
            seen += len(page.items)
            cursor = page.cursor
            if not cursor:
                break
        return seen >= chunks

    def _join(self, pk: str, sid: str, chunks: int) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        cursor = None
        for _ in range(100_000):
            page = self.store.query(pk, prefix=_fkey(sid, "out") + "#", limit=200, cursor=cursor)
            parts.extend(i.data for i in page.items)
            cursor = page.cursor
            if not cursor:
                break
        merged: dict[str, Any] = {"results": [], "total_items": 0, "processed_items": 0, "skipped_items": 0,
                                  "errors": [], "is_complete": True, "chunks": chunks}
        for part in parts:
            if part.get("error"):
                err = part["error"]
                raise StageError(err.get("message") or "a fan-out chunk failed", stage=err.get("stage") or sid,
                                 field=err.get("field"), hint=err.get("hint"))
            out = part["output"]
            merged["results"].extend(out.get("results") or [])
            for key in ("total_items", "processed_items", "skipped_items"):
                merged[key] += int(out.get(key) or 0)
            merged["errors"].extend(out.get("errors") or [])
        return merged

    @staticmethod
    def _chunk_resume(plan: Any, resume: dict[str, StageResult], target: str) -> dict[str, StageResult]:
        """In chunk mode every other unfinished main-graph stage counts as skipped: only the target runs."""
        now = time.time()
        out = dict(resume)
        for sid in plan.main:
            if sid != target and sid not in out:
                out[sid] = StageResult(stage_id=sid, component_type=plan.stages[sid].stage.component_type,
                                       status=StageStatus.SKIPPED, started_at=now, finished_at=now)
        return out


class _ChunkContext:
    """A foreach's StageContext narrowed to one chunk's items.

    The stock foreach numbers items from 0; this view shifts the index
    variable and the iteration labels by the chunk's offset, so recorded
    iterations and ``{{context.index}}`` are global. Items whose iteration
    already completed (a re-delivered chunk) return their stored output.
    """

    def __init__(self, ctx: Any, items: list[Any], offset: int, done: dict[str, Any]) -> None:
        self._ctx = ctx
        self._offset = offset
        self._done = done
        self.config = {**ctx.config, "items": items}
        self._index_var = ctx.config.get("index_variable") or "index"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    async def run_stages(self, ids: Any, *, context: dict[str, Any] | None = None, label: str | None = None) -> dict[str, Any]:
        ids = list(ids)
        if label is not None and label.isdigit():
            label = str(int(label) + self._offset)
            if context is not None:
                context = {**context, self._index_var: int(label)}
            if label in self._done and ids:
                return {ids[-1]: self._done[label]}
        return await self._ctx.run_stages(ids, context=context, label=label)


def _checkpoint(store: Store, repo: RunRepository, plan: Any, run_id: str) -> dict[str, StageResult]:
    """``repo.checkpoint``, read stage by stage when that is cheaper.

    The checkpoint holds only whole-stage results (``stage#ID``), but the
    partition also holds every foreach iteration (``stage#ID#N``): after a
    fan-out of thousands of items, one get per stage beats reading them all.
    """
    if len(plan.stages) > 25:
        return repo.checkpoint(run_id)
    finished = {StageStatus.COMPLETED.value, StageStatus.FAILED.value, StageStatus.SKIPPED.value}
    out: dict[str, StageResult] = {}
    for sid in plan.stages:
        item = store.get(f"{repo.ns}run#{run_id}", f"stage#{sid}")  # the layout in kernel/runs.py
        if item is not None and item.data.get("status") in finished:
            out[sid] = StageResult.model_validate(item.data)
    return out


def _fkey(sid: str, part: str, number: int | None = None) -> str:
    return f"fanout#{sid}#{part}" if number is None else f"fanout#{sid}#{part}#{number:06d}"


def _ids(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in (value or []) if isinstance(v, str)]


def _loader(store: Store, org: str) -> Any:
    """Sub-pipelines of a stored run: the tenant's saved pipelines, resolved like every entry point's."""
    from flowmason.kernel.runner import Loader

    return Loader(store=store, namespace=namespace(org), files=False)
