"""The job handler: runs stored runs from queue messages, free of Lambda and SQS.

The HTTP API stores a run (status ``pending``, with the exact pipeline it
runs: ``create_run``) and sends ``run_message(org, run_id)`` to a ``Queue``.
Whoever consumes the queue calls ``Jobs.handle(message)``: the worker
Lambda (SQS), the local stack's poller, or ``fm serve``'s ``LocalQueue``.
Recovery sends the same message for a run whose process died.

- **Checkpoints.** The executor records every finished stage through
  ``RunRepository``; a delivery of a run that already started resumes
  from ``RunRepository.checkpoint``: finished main-graph stages never run
  again. A stage that was in flight when a worker died runs again.
- **One worker per run.** The run's lease (``leases``) keeps a duplicate
  delivery from running the run twice at once; a run message that finds
  it taken comes back later with a growing delay (it may be a fan-out's
  join racing the worker that fanned out), a chunk message is dropped (the
  holder writes the chunk's result, or its message returns).
- **Time limits.** With a deadline (Lambda's remaining time minus a
  margin), a run still going at the deadline is parked
  (``Execution.suspend("deadline")``: nothing is recorded as cancelled)
  and a continuation message is sent.
- **Fan-out** (``fanout``): a stage wrapper around ``foreach``.
- **Cancellation.** ``request_cancel`` writes a flag (``sk = "cancel"``);
  an execution in this process is cancelled at once, one elsewhere at its
  next poll; a run whose process died is marked cancelled.
- **Dead letters.** ``dead_letter`` marks a run whose message kept failing
  as failed, with the last error the worker saw (``sk = "worker_error"``).

The run's partition also holds ``sk = "pipeline"``: ``{"definition",
"version", "base"}``, the resolved pipeline the run runs (``base``: the
folder its file references resolve against, for runs started from a file).
A Queue is anything with ``send(body, delay_s=0)`` and ``send_many(bodies)``.
No AWS SDK is imported here.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Protocol

from flowmason.kernel import blobs
from flowmason.kernel.errors import (
    FlowMasonError,
    InputError,
    NotFoundError,
    PipelineLoadError,
    StorageError,
)
from flowmason.kernel.model import Pipeline, Run, RunStatus, parse_pipeline
from flowmason.kernel.runs import RunRepository, namespace
from flowmason.kernel.storage import MAX_ITEM_BYTES, Store

from . import leases
from .fanout import FanOut, chunk_resume, fkey, wants_wrapper
from .recorder import HostRecorder

log = logging.getLogger("flowmason.worker")

TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})
# inputs share the run item with its bookkeeping; keep well under the item limit
MAX_INPUT_BYTES = MAX_ITEM_BYTES // 2
_CHUNK_HOOKS = ("fm_stage_started", "fm_stage_finished", "fm_stage_failed", "fm_stage_skipped", "fm_stage_event",
                "fm_wrap_stage")
BUSY_RETRIES = 8  # a run message that finds the run leased comes back after 1, 2, 4 ... 60 s


class Queue(Protocol):
    def send(self, body: dict[str, Any], *, delay_s: int = 0) -> None: ...

    def send_many(self, bodies: list[dict[str, Any]]) -> None: ...


def _max_continuations() -> int:
    from flowmason.kernel.settings import get_settings

    return get_settings().max_continuations


def run_message(org: str, run_id: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "run", "run_id": run_id, "org": org, **extra}


def _pk(org: str, run_id: str) -> str:
    return RunRepository(None, namespace(org)).partition(run_id)  # type: ignore[arg-type]


# -- starting and cancelling (used by the API) --


def create_run(
    store: Store, org: str, pipeline: Pipeline, definition: dict[str, Any], inputs: dict[str, Any], *,
    version: int | None = None, created_by: str | None = None,
) -> Run:
    """Store a pending run and the exact pipeline it will run; the caller enqueues it."""
    if store.blobs is None:  # with a blob store, large inputs are kept there whole (kernel.blobs)
        size = len(json.dumps(inputs, default=str).encode())
        if size > MAX_INPUT_BYTES:
            raise InputError(
                f"inputs are {size} bytes; a stored run without a blob store takes at most {MAX_INPUT_BYTES}",
                field="inputs", hint="pass large data by reference (a URL or a key), or give the store a blob store "
                "(DynamoDB: FM_BLOB_BUCKET)",
            )
    run = Run(
        pipeline_id=pipeline.key, pipeline_name=pipeline.name,
        pipeline_version=str(version) if version is not None else pipeline.version,
        inputs=inputs, metadata={"org": org, "created_by": created_by, "pipeline_label": pipeline.version},
    )
    # a large definition is kept whole in the blob store
    blobs.put_whole(store, namespace(org), _pk(org, run.id), "pipeline", {"definition": definition, "version": version},
                    ("definition",), where=f"run '{run.id}', its pipeline")
    RunRepository(store, namespace(org)).run_started(run)
    return run


def request_cancel(store: Store, org: str, run_id: str, *, jobs: "Jobs | None" = None) -> Run:
    """Ask for a run to stop.

    A pending run, or one whose process died (no live lease), is cancelled
    at once; one running in this process (``jobs``) is cancelled directly;
    one running elsewhere at its next poll of the flag.
    """
    repo = RunRepository(store, namespace(org))
    run = repo.get_run(run_id)
    if run.status in TERMINAL:
        return run
    pk = repo.partition(run_id)
    store.put(pk, "cancel", {"at": time.time()})
    if jobs is not None and jobs.cancel_local(org, run_id):
        return run
    holder = leases.holder(store, pk)
    if run.status is RunStatus.PENDING or holder is None or not leases.holder_alive(holder):
        finish_cancelled(repo, run)
    return run


def finish_cancelled(repo: RunRepository, run: Run) -> None:
    run.status = RunStatus.CANCELLED
    run.error = {"code": "cancelled", "message": "the run was cancelled"}
    run.finished_at = time.time()
    repo.run_finished(run)


def fail_run(repo: RunRepository, run: Run, code: str, message: str, hint: str | None = None) -> None:
    run.status = RunStatus.FAILED
    run.finished_at = time.time()
    run.error = {"code": code, "message": message, "pipeline": run.pipeline_id, "stage": None, "field": None,
                 "hint": hint}
    repo.run_finished(run)


class Jobs:
    """Handles queue messages against one store and one queue."""

    def __init__(self, store: Store, queue: Queue, *, fanout_min_items: int | None = 1000, chunk_size: int = 100) -> None:
        self.store = store
        self.queue = queue
        self.fanout_min_items = fanout_min_items
        self.chunk_size = max(1, chunk_size)
        self.live: dict[tuple[str, str], Any] = {}  # (org, run id) -> the Execution running it here
        self.parking: str | None = None  # set by park_all: runs that stop now are parked, not continued

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
        fail_run(repo, run, "dead_letter", f"the run's message failed every delivery; last error: {reason}",
                 "fix the cause and start the run again")
        return "failed"

    def cancel_local(self, org: str, run_id: str) -> bool:
        """Cancel the run if this process is running it; True when it was."""
        ex = self.live.get((org, run_id))
        if ex is None:
            return False
        ex.cancel()
        return True

    async def park_all(self, reason: str = "shutdown") -> int:
        """Park every run this process is running (leases released, records still ``running``); returns how many."""
        self.parking = reason
        live = list(self.live.values())
        for ex in live:
            ex.suspend(reason)
        for _ in range(200):  # bounded: each parks within a turn or two of the loop
            if not self.live:
                break
            await asyncio.sleep(0.01)
        return len(live)

    # -- a whole run (or its continuation) --
    async def _run(self, body: dict[str, Any], org: str, run_id: str, deadline: float | None, *,
                   force: bool = False) -> str:
        repo = RunRepository(self.store, namespace(org))
        pk = repo.partition(run_id)
        run = repo.get_run(run_id)
        if run.status in TERMINAL:
            return "already-finished"
        if self.store.get(pk, "cancel") is not None:
            finish_cancelled(repo, run)
            return "cancelled"
        continuation = int(body.get("continuation", 0))
        if continuation > _max_continuations():
            fail_run(repo, run, "too_many_continuations", f"the run was continued {continuation} times",
                     "a stage probably takes longer than the worker's time limit; make it smaller")
            return "failed"
        ex_holder: list[Any] = []
        loop = asyncio.get_running_loop()

        def lost() -> None:  # called on the heartbeat thread: hand the suspend to the run's own loop
            for ex in ex_holder:
                loop.call_soon_threadsafe(ex.suspend, "lease-lost")

        lease = leases.acquire(self.store, pk, force=force, on_lost=lost)
        if lease is None:
            # Another worker holds the run. Usually a duplicate delivery, but it can also be a fan-out's
            # join arriving while the worker that fanned out is still winding down: try again later.
            tries = int(body.get("busy", 0))
            if tries < BUSY_RETRIES and not body.get("recovery"):
                self.queue.send({**body, "busy": tries + 1}, delay_s=min(60, 2 ** tries))
                return "busy-retry"
            return "busy"
        try:
            try:
                outcome = await self._execute(org, run, repo, deadline, HostRecorder(repo), ex_holder=ex_holder)
            except asyncio.CancelledError:  # the host is going away mid-run
                self.store.put(pk, "parked", {"at": time.time(), "reason": "shutdown"})
                raise
            if outcome == "deadline":
                self.queue.send(run_message(org, run_id, continuation=continuation + 1))
                return "continued"
            if outcome == self.parking:
                self.store.put(pk, "parked", {"at": time.time(), "reason": outcome})
                return "parked"
            return outcome
        finally:
            lease.release()

    async def resume(self, org: str, run_id: str, *, force: bool = False) -> str:
        """Resume a run here and now (``fm runs resume``): ``busy`` when a live process holds it."""
        return await self._run(run_message(org, run_id, recovery=True), org, run_id, None, force=force)

    # -- one chunk of a fan-out --
    async def _chunk(self, body: dict[str, Any], org: str, run_id: str, deadline: float | None, receive_count: int) -> str:
        sid, number = str(body["stage"]), int(body["chunk"])
        repo = RunRepository(self.store, namespace(org))
        pk = repo.partition(run_id)
        fan = self._fanout(org, run_id, repo, chunk=(sid, number),
                           retry=receive_count > 1 or bool(body.get("continuation")))
        if self.store.get(pk, fkey(sid, "out", number)) is not None:
            fan.maybe_join(sid, number)
            return "chunk-already-done"
        run = repo.get_run(run_id)
        if run.status in TERMINAL:
            return "already-finished"
        lease = leases.acquire(self.store, pk, f"lease#{sid}#{number}")
        if lease is None:
            return "busy"
        try:
            if self.store.get(pk, "cancel") is not None:
                fan.chunk_done({"error": {"code": "cancelled", "message": "the run was cancelled"}})
                return "cancelled"
            recorder = HostRecorder(repo, chunk_mode=True)
            fan.flush = recorder.flush
            outcome = await self._execute(org, run, repo, deadline, recorder, fan=fan)
            if outcome == "deadline" or outcome == self.parking:
                self.queue.send({**body, "continuation": int(body.get("continuation", 0)) + 1})
                return "continued"
            if outcome != "chunk-done":
                # cancelled, or failed before the loop ran: still a result, so the join happens and settles the run
                fan.chunk_done({"error": run.error or {"code": outcome, "message": f"the chunk ended {outcome}"}})
            return outcome
        finally:
            lease.release()

    def _fanout(self, org: str, run_id: str, repo: RunRepository, *, chunk: tuple[str, int] | None = None,
                retry: bool = False) -> FanOut:
        return FanOut(self.store, repo, run_id, send=self.queue.send, send_many=self.queue.send_many, org=org,
                      fanout_min_items=self.fanout_min_items, chunk_size=self.chunk_size, chunk=chunk, retry=retry)

    # -- the execution shared by both --
    def _prepare(self, org: str, run: Run, repo: RunRepository, recorder: HostRecorder,
                 fan: FanOut | None) -> Any:
        """The Execution of a stored run, built through the Runner like every entry point's."""
        from flowmason.kernel.runner import Runner

        snap = self.store.get(repo.partition(run.id), "pipeline")
        if snap is None:
            raise PipelineLoadError(f"run '{run.id}' has no stored pipeline", field="run_id",
                                    hint="runs recorded before durable runs (or too big to store) cannot resume")
        data = blobs.unpack(self.store, snap.data, where=f"run '{run.id}', its pipeline")
        base = data.get("base")
        runner = Runner(store=self.store, namespace=namespace(org), base=base, files=bool(base))
        pipeline = parse_pipeline(data["definition"], source=run.pipeline_id)
        plan, _ = runner.prepare(pipeline)
        chunk = fan.chunk if fan is not None else None
        # a replay reuses its kept loop iterations too (copied in by the replay route)
        resume = repo.checkpoint(run.id, stage_ids=list(plan.stages), iterations="replay_of" in run.metadata)
        if chunk is not None:
            resume = chunk_resume(plan, resume, chunk[0])
        options: dict[str, Any] = {}
        if wants_wrapper(plan, self.fanout_min_items, chunk):
            options["wrappers"] = [fan or self._fanout(org, run.id, repo)]
        if chunk is not None:
            # a chunk is part of a run, not a run: stage events yes, run started/finished no
            from flowmason.kernel.plugins import get_plugin_manager

            pm = get_plugin_manager()
            options["hooks"] = {n: getattr(pm.hook, n) for n in _CHUNK_HOOKS if getattr(pm.hook, n).get_hookimpls()}
        # the run's live events (starts, logs, tokens) for GET /runs/{id}/events, when the events plugin is loaded
        from flowmason.plugins.events import EventLog

        events = EventLog.for_host(self.store, repo.ns, run_events=chunk is None)  # a chunk is not the run
        if events is not None:
            options["listeners"] = [events]
        return runner.execution(pipeline, run=run, resume=resume, recorder=recorder, **options)

    async def _execute(self, org: str, run: Run, repo: RunRepository, deadline: float | None,
                       recorder: HostRecorder, *, fan: FanOut | None = None, ex_holder: list[Any] | None = None) -> str:
        try:
            ex = self._prepare(org, run, repo, recorder, fan)
        except FlowMasonError as exc:
            if isinstance(exc, StorageError):
                raise
            # the stored pipeline no longer loads (a saved parent changed, a component is gone): say so, finally
            fail_run(repo, run, "cannot_resume", f"the run's pipeline cannot be loaded: {exc}",
                     "start the run again with a pipeline that loads")
            return "failed"
        if ex_holder is not None:
            ex_holder.append(ex)
        key = (org, run.id)
        if fan is None:
            self.live[key] = ex
        task = asyncio.ensure_future(ex.execute())
        watcher = asyncio.ensure_future(self._watch_cancel(repo.partition(run.id), ex, task))
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                ex.suspend("deadline")  # stops here without recording anything as cancelled; resumed later
            try:
                await task
            except FlowMasonError:
                if recorder.storage_error is not None:
                    raise recorder.storage_error from None
                return run.status.value
            if ex.suspended is not None:
                return ex.suspended
            return run.status.value
        except asyncio.CancelledError:
            ex.suspend(self.parking or "shutdown")  # the host is going away: park, never record it cancelled
            await asyncio.gather(task, return_exceptions=True)
            raise
        finally:
            if self.live.get(key) is ex:
                del self.live[key]
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            if recorder.storage_error is None:
                recorder.flush()
            for listener in ex.listeners:  # the event log's last events (a run parked from outside)
                flush = getattr(listener, "flush", None)
                if flush is not None:
                    flush()

    async def _watch_cancel(self, pk: str, ex: Any, task: asyncio.Future) -> None:
        every = leases.settings().cancel_poll_s
        for _ in range(10**9):  # bounded; ends with the execution (cancelled by _execute)
            await asyncio.sleep(every)
            if task.done():
                return
            if await asyncio.to_thread(self.store.get, pk, "cancel") is not None:
                ex.cancel()
                return
