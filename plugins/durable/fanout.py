"""Fan-out: a main-graph ``foreach`` over many items, spread over chunk messages.

A stage wrapper (``Execution(wrappers=[...])``) around the stock ``foreach``:

- **Fan out.** At least ``fanout_min_items`` items (or ``"distributed":
  true`` in the stage config; ``"fanout_chunk_size"`` overrides the chunk
  size) are planned as chunks of ``chunk_size`` items, one message each;
  the run then parks (``ctx.suspend("fanned-out")``).
- **A chunk.** A chunk message runs the same pipeline with every other
  main-graph stage counted as skipped; the wrapper runs the stock
  ``foreach`` over the chunk's items only (``ChunkContext``: iteration
  labels and ``{{context.index}}`` stay global), writes the chunk's result
  once (if absent), bumps a counter and parks (``ctx.suspend("chunk-done")``).
  A re-delivered chunk skips the items whose iteration was recorded.
- **Join.** The delivery that brings the counter to the number of chunks
  checks the done markers and sends a run message; that continuation finds
  every chunk done and the wrapper returns the chunk results joined in
  order as the foreach stage's output.

Bookkeeping lives in the run's partition::

    sk = "fanout#{stage}#meta"          {"chunks", "size", "total", "dispatched"}
    sk = "fanout#{stage}#out#{n:06d}"   a chunk's result: {"output"} or {"error"}
    sk = "fanout#{stage}#done#{n:06d}"  a chunk is done (written after its result)
    sk = "fanout#{stage}#count"         atomic count of done chunks
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

from flowmason.kernel.errors import ConditionFailedError, FlowMasonError, NotFoundError, StageError
from flowmason.kernel.components import StageContext
from flowmason.kernel.model import StageResult, StageStatus
from flowmason.kernel.runs import RunRepository
from flowmason.kernel.storage import Store


def fkey(sid: str, part: str, number: int | None = None) -> str:
    return f"fanout#{sid}#{part}" if number is None else f"fanout#{sid}#{part}#{number:06d}"


def wants_wrapper(plan: Any, fanout_min_items: int | None, chunk: tuple[str, int] | None) -> bool:
    """Only a plan with a main-graph foreach pays for a wrapper (wrappers turn the inline fast path off)."""
    if fanout_min_items is None and chunk is None:
        return False
    return any(plan.stages[sid].stage.component_type == "foreach" for sid in plan.main)


class FanOut:
    """The stage wrapper of one execution of a run (``chunk`` set when the execution is one chunk)."""

    def __init__(self, store: Store, repo: RunRepository, run_id: str, *, send: Callable[[dict[str, Any]], None],
                 send_many: Callable[[list[dict[str, Any]]], None], org: str, fanout_min_items: int | None,
                 chunk_size: int, chunk: tuple[str, int] | None = None, retry: bool = False,
                 flush: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.repo = repo
        self.run_id = run_id
        self.org = org
        self.pk = repo.partition(run_id)
        self.send = send
        self.send_many = send_many
        self.fanout_min_items = fanout_min_items
        self.chunk_size = max(1, chunk_size)
        self.chunk = chunk
        self.retry = retry
        self.flush = flush

    def __call__(self, ctx: StageContext, call: Any) -> Any:
        if ctx.stage.component_type != "foreach" or ctx.graph.label is not None:
            return call
        if self.chunk is not None and ctx.stage.id == self.chunk[0]:
            return lambda c: self._run_chunk(c, call)
        items = ctx.config.get("items")
        if not isinstance(items, (list, tuple)) or not self._wants(ctx, items):
            return call

        async def fan(c: StageContext) -> Any:
            return self._fan_out_or_join(c, list(items))

        return fan

    # -- planning and joining (the run's own execution) --
    def _wants(self, ctx: StageContext, items: Any) -> bool:
        flag = ctx.config.get("distributed")
        if flag is not None:
            return bool(flag) and len(items) > 0
        return self.fanout_min_items is not None and len(items) >= self.fanout_min_items

    def _size(self, ctx: StageContext) -> int:
        size = ctx.config.get("fanout_chunk_size")
        return max(1, int(size)) if size else self.chunk_size

    def _fan_out_or_join(self, ctx: StageContext, items: list[Any]) -> Any:
        sid, pk = ctx.stage.id, self.pk
        meta = self.store.get(pk, fkey(sid, "meta"))
        if meta is None:
            size = self._size(ctx)
            plan = {"chunks": math.ceil(len(items) / size), "size": size, "total": len(items), "dispatched": False}
            try:
                self.store.put(pk, fkey(sid, "meta"), plan, if_absent=True)
            except ConditionFailedError:  # a duplicate delivery planned it first
                plan = self.store.get(pk, fkey(sid, "meta")).data  # type: ignore[union-attr]
        else:
            plan = meta.data
            if chunks_done(self.store, pk, sid, plan["chunks"]):
                return join(self.store, pk, sid, plan["chunks"])
        if not plan.get("dispatched"):
            # sent again after a crash between the meta write and the sends: duplicates are harmless
            self.send_many([{"kind": "chunk", "run_id": self.run_id, "org": self.org, "stage": sid, "chunk": n}
                            for n in range(plan["chunks"])])
            self.store.put(pk, fkey(sid, "meta"), {**plan, "dispatched": True})
        ctx.suspend("fanned-out")

    # -- one chunk --
    async def _run_chunk(self, ctx: StageContext, call: Any) -> Any:
        sid, number = self.chunk  # type: ignore[misc]
        meta = self.store.get(self.pk, fkey(sid, "meta"))
        if meta is None:
            raise NotFoundError(f"fan-out of stage '{sid}' has no plan", stage=sid)
        size = meta.data["size"]
        start = number * size
        items = list(ctx.config.get("items") or [])[start:start + size]
        done: dict[str, Any] = {}
        loop_ids = _ids(ctx.config.get("loop_stages"))
        if self.retry and loop_ids:
            done = self.repo.finished_iterations(self.run_id, loop_ids[-1], {str(i) for i in range(start, start + len(items))})
        view = ChunkContext(ctx, items, start, done)
        try:
            out = await call(view)
            for err in out.get("errors") or []:
                err["index"] = err.get("index", 0) + start
            result: dict[str, Any] = {"output": out}
        except FlowMasonError as exc:
            result = {"error": exc.to_dict()}
        self.flush()  # the items' records before the chunk's result: a retry must see them
        self.chunk_done(result)
        ctx.suspend("chunk-done")

    def chunk_done(self, result: dict[str, Any]) -> None:
        sid, number = self.chunk  # type: ignore[misc]
        try:
            self.store.put(self.pk, fkey(sid, "out", number), result, if_absent=True)
        except ConditionFailedError:
            pass  # a duplicate delivery got there first; its result stands
        self.maybe_join(sid, number)

    def maybe_join(self, sid: str, number: int) -> None:
        """Mark chunk ``number`` done and count it; at the last count, verify the markers and send the join.

        The marker is written after the result (two puts, not a
        transaction: moto copies the whole table per transaction item), and a
        re-delivered chunk whose result exists comes through here again, so
        a marker or a count lost to a crash is made up; over-counting is
        harmless because the markers are checked.
        """
        pk = self.pk
        try:
            self.store.put(pk, fkey(sid, "done", number), {"at": time.time()}, if_absent=True)
        except ConditionFailedError:
            pass
        meta = self.store.get(pk, fkey(sid, "meta"))
        if meta is None:
            return
        chunks = meta.data["chunks"]
        n = self.store.increment(pk, fkey(sid, "count"))
        if n >= chunks and chunks_done(self.store, pk, sid, chunks):
            self.send({"kind": "run", "run_id": self.run_id, "org": self.org, "join": sid})


def chunk_resume(plan: Any, resume: dict[str, StageResult], target: str) -> dict[str, StageResult]:
    """In chunk mode every other unfinished main-graph stage counts as skipped: only the target runs."""
    now = time.time()
    out = dict(resume)
    for sid in plan.main:
        if sid != target and sid not in out:
            out[sid] = StageResult(stage_id=sid, component_type=plan.stages[sid].stage.component_type,
                                   status=StageStatus.SKIPPED, started_at=now, finished_at=now)
    return out


def chunks_done(store: Store, pk: str, sid: str, chunks: int) -> bool:
    seen = sum(1 for _ in store.query_all(pk, prefix=fkey(sid, "done") + "#", page_size=1000))
    return seen >= chunks


def join(store: Store, pk: str, sid: str, chunks: int) -> dict[str, Any]:
    parts = [i.data for i in store.query_all(pk, prefix=fkey(sid, "out") + "#", page_size=200)]
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


class ChunkContext(StageContext):
    """The foreach stage's context narrowed to one chunk's items.

    The stock foreach numbers items from 0; this context shifts the index
    variable and the iteration labels by the chunk's offset, so recorded
    iterations and ``{{context.index}}`` are global. Items whose iteration
    already completed (a re-delivered chunk) return their stored output.
    """

    __slots__ = ("_offset", "_done", "_index_var")

    def __init__(self, ctx: StageContext, items: list[Any], offset: int, done: dict[str, Any]) -> None:
        sp = ctx.execution.plan.stages[ctx.stage.id]
        super().__init__(ctx.execution, sp, {**ctx.config, "items": items}, ctx.scope, ctx.graph)
        self.attempt = ctx.attempt
        self._offset = offset
        self._done = done
        self._index_var = ctx.config.get("index_variable") or "index"

    async def run_stages(self, ids: Any, *, context: dict[str, Any] | None = None, label: str | None = None) -> dict[str, Any]:
        ids = list(ids)
        if label is not None and label.isdigit():
            label = str(int(label) + self._offset)
            if context is not None:
                context = {**context, self._index_var: int(label)}
            if label in self._done and ids:
                return {ids[-1]: self._done[label]}
        return await super().run_stages(ids, context=context, label=label)


def _ids(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in (value or []) if isinstance(v, str)]
