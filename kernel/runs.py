"""Run history on the storage contract: runs, their stage results, listings.

Item layout (one partition per run, so a run's checkpoint is one query):

    pk = "{ns}run#{run_id}"        sk = "meta"                     the Run
    pk = "{ns}run#{run_id}"        sk = "stage#{stage_id}[#{iter}]"  a StageResult
    pk = "{ns}run#{run_id}"        sk = "graph#{n:05d}"            a large run graph, in slices
    pk = "{ns}runs"                sk = "{run_id}"                 listing entry (newest last)
    pk = "{ns}runs#p#{pipeline}"   sk = "{run_id}"                 listing per pipeline
    pk = "runs#active"             sk = "{ns}{run_id}"             a run not yet finished: {"ns", "run_id"}

Run ids start with a hex timestamp, so sort-key order is time order. The
run and its listing entries are written in one transaction; a stage
result is one put (the checkpoint the executor writes after each stage).
The active index is one partition for every namespace, written with the
run while it is pending or running and deleted with its final record, so a
host that recovers runs whose process died (``flowmason.plugins.durable``)
reads the few unfinished runs, not the whole history. Hosts keep their own
bookkeeping in a run's partition under other sort keys (``lease``,
``pipeline``, ...), never under ``meta`` or ``stage#``.
``ns`` is the tenant namespace (``namespace(org)``): the default
organization, which is the user on a laptop, keeps its items at the root,
so runs made by ``fm run`` and through ``fm serve`` on the same store see
each other; any other organization's items live under "org#ID#".

The run's graph (``metadata["graph"]``: stage -> what it waits for, which
``fm runs show`` draws) grows with the pipeline; a 50,000-stage chain's is
about 1 MB, past the item limit. A graph larger than 64 KB of JSON is
written beside the run as ``graph#`` items holding slices of its JSON text,
and the run item says how many (``metadata["graph_parts"]``); ``get_run``
puts it back together, so readers see the same Run either way.
"""
from __future__ import annotations

import asyncio
import json
import weakref
from typing import Any, Iterator

from .errors import ItemTooLargeError, NotFoundError, StorageError
from .model import Run, RunStatus, StageResult, StageStatus
from .storage import MAX_ITEM_BYTES, Op, Page, Store

_SUMMARY_FIELDS = ("id", "pipeline_id", "pipeline_name", "pipeline_version", "status", "created_at",
                   "started_at", "finished_at", "duration_ms", "error")
ACTIVE_PK = "runs#active"
_FINISHED = (StageStatus.COMPLETED, StageStatus.FAILED, StageStatus.SKIPPED)
_FINISHED_VALUES = frozenset(s.value for s in _FINISHED)
# a checkpoint of at most this many stages is read stage by stage (one get each), not as the whole partition
_POINT_READS = 25
# leave room for keys and bookkeeping under the backend's item limit
_VALUE_BUDGET = MAX_ITEM_BYTES - 8 * 1024
# a graph up to this size stays inside the run item, leaving room for inputs and output
_GRAPH_INLINE_CHARS = 64 * 1024
# the slice is stored as a JSON string, where every quote and backslash doubles: at most 2x
_GRAPH_SLICE_CHARS = _VALUE_BUDGET // 2
_GRAPH_PARTS = "graph_parts"


DEFAULT_ORG = "default"


def namespace(org: str | None) -> str:
    """The key prefix of an organization's items ("" for the default organization)."""
    if not org or org == DEFAULT_ORG:
        return ""
    return f"org#{org}#"


# The repository recording each live run, so event-hook plugins (time travel)
# can write beside the run in the same store and tenant namespace. Weak: a
# repository made only to write a pending run (the API) does not stay here.
_RECORDING: "weakref.WeakValueDictionary[str, RunRepository]" = weakref.WeakValueDictionary()


def recording_repository(run_id: str) -> "RunRepository | None":
    """The repository that is recording the live run ``run_id``, or None when the run is not recorded."""
    return _RECORDING.get(run_id)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _shrink(value: Any, budget: int) -> Any:
    text = json.dumps(value, default=str, ensure_ascii=False)
    if len(text.encode()) <= budget:
        return value
    return {"__truncated__": True, "size_bytes": len(text.encode()), "preview": text[: min(4000, budget // 4)]}


class RunRepository:
    """Stores runs and stage results; implements the executor's ``Recorder``.

    Stage results are committed in groups: the results recorded within
    ``GROUP_WINDOW_S`` of the first unwritten one (a chain of plain-function
    stages in one loop turn, async stages that follow each other quickly,
    stages that finished together) go to the store in one batch, and always
    before the run's own record. A crash loses at most the stages finished
    in the last window, which a resume runs again; a stage that takes
    longer than the window (a model call) is written before the next one
    finishes. Outside an event loop, or with ``group_commit=False``, every
    result is written at once.
    """

    # a long synchronous stretch still flushes every this many results
    GROUP_LIMIT = 256
    # one transaction per stage would dominate a chain of quick async stages (~50 µs each on SQLite)
    GROUP_WINDOW_S = 0.002

    def __init__(self, store: Store, namespace: str = "", *, group_commit: bool = True) -> None:
        self.store = store
        self.ns = namespace
        self.group_commit = group_commit
        self._pending: list[tuple[str, str, dict[str, Any]]] = []
        self._flush_scheduled = False

    # -- keys --
    def _run_pk(self, run_id: str) -> str:
        return f"{self.ns}run#{run_id}"

    def partition(self, run_id: str) -> str:
        """The run's partition key: hosts keep their bookkeeping for the run there (not under meta or stage#)."""
        return self._run_pk(run_id)

    # -- Recorder --
    def run_started(self, run: Run) -> None:
        self._write_run(run)
        _RECORDING[run.id] = self

    def run_finished(self, run: Run) -> None:
        _RECORDING.pop(run.id, None)
        self.flush()
        self._write_run(run)

    def stage_recorded(self, run: Run, result: StageResult) -> None:
        sk = f"stage#{result.stage_id}" if result.iteration is None else f"stage#{result.stage_id}#{result.iteration}"
        status = result.status
        data = {
            "stage_id": result.stage_id,
            "component_type": result.component_type,
            "status": status.value if isinstance(status, StageStatus) else status,
            "input": result.input,
            "output": result.output,
            "error": result.error,
            "started_at": result.started_at,
            "finished_at": result.finished_at,
            "duration_ms": result.duration_ms,
            "attempts": result.attempts,
            "usage": result.usage,
            "iteration": result.iteration,
        }
        pk = self._run_pk(run.id)
        if not self.group_commit:
            self._put_one(pk, sk, data)
            return
        self._pending.append((pk, sk, data))
        if len(self._pending) >= self.GROUP_LIMIT:
            self.flush()
        elif not self._flush_scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._flush_scheduled = True
            loop.call_later(self.GROUP_WINDOW_S, self.flush)

    def flush(self) -> None:
        """Write the stage results recorded since the last flush (one batch)."""
        self._flush_scheduled = False
        items, self._pending = self._pending, []
        if not items:
            return
        try:
            self.store.batch_put(items)
        except (TypeError, ValueError, ItemTooLargeError):
            for pk, sk, data in items:  # find and fix the one that does not fit
                self._put_one(pk, sk, data)

    def _put_one(self, pk: str, sk: str, data: dict[str, Any]) -> None:
        try:
            self.store.put(pk, sk, data)
        except (TypeError, ValueError):
            self.store.put(pk, sk, _jsonable(data))
        except ItemTooLargeError:
            data["input"] = _shrink(data["input"], _VALUE_BUDGET // 2)
            data["output"] = _shrink(data["output"], _VALUE_BUDGET // 2)
            self.store.put(pk, sk, _jsonable(data))

    def _write_run(self, run: Run) -> None:
        data = run.model_dump(mode="json")
        self._write_large_graph(run.id, data)
        try:
            size = len(json.dumps(data).encode())
        except (TypeError, ValueError):
            data = _jsonable(data)
            size = len(json.dumps(data).encode())
        if size > _VALUE_BUDGET:
            data["inputs"] = _shrink(data["inputs"], _VALUE_BUDGET // 3)
            data["output"] = _shrink(data["output"], _VALUE_BUDGET // 3)
        summary = {k: data.get(k) for k in _SUMMARY_FIELDS}
        active = (Op("put", ACTIVE_PK, self.ns + run.id, {"ns": self.ns, "run_id": run.id})
                  if run.status in (RunStatus.PENDING, RunStatus.RUNNING) else Op("delete", ACTIVE_PK, self.ns + run.id))
        self.store.transact([
            Op("put", self._run_pk(run.id), "meta", data),
            Op("put", f"{self.ns}runs", run.id, summary),
            Op("put", f"{self.ns}runs#p#{run.pipeline_id}", run.id, summary),
            active,
        ])

    def _write_large_graph(self, run_id: str, data: dict[str, Any]) -> None:
        """Move a large ``metadata["graph"]`` out of the run item ``data`` into its own items.

        Written again with each write of the run (the same slices: the graph
        never changes), always before the run item that refers to them.
        """
        meta = data.get("metadata")
        graph = meta.get("graph") if isinstance(meta, dict) else None
        if not isinstance(graph, dict):
            return
        text = json.dumps(graph, default=str)  # ASCII: a character is a byte
        if len(text) <= _GRAPH_INLINE_CHARS:
            return
        parts = [text[i:i + _GRAPH_SLICE_CHARS] for i in range(0, len(text), _GRAPH_SLICE_CHARS)]
        pk = self._run_pk(run_id)
        self.store.batch_put((pk, f"graph#{n:05d}", {"text": part}) for n, part in enumerate(parts))
        del meta["graph"]
        meta[_GRAPH_PARTS] = len(parts)

    def _read_large_graph(self, run_id: str, parts: int) -> dict[str, list[str]]:
        texts = [i.data["text"] for i in self.store.query_all(self._run_pk(run_id), prefix="graph#", page_size=100)]
        if len(texts) != parts:  # never show a partial graph as if it were the run's
            raise StorageError(
                f"run '{run_id}' has {len(texts)} of the {parts} items of its graph",
                field="metadata.graph", hint="the store lost items of this run; its stage results are still readable",
            )
        return json.loads("".join(texts))

    # -- reading --
    def get_run(self, run_id: str) -> Run:
        item = self.store.get(self._run_pk(run_id), "meta")
        if item is None:
            raise NotFoundError(f"no run with id '{run_id}'", field="run_id", hint="`fm runs` lists the recorded runs")
        meta = item.data.get("metadata")
        if isinstance(meta, dict) and meta.get(_GRAPH_PARTS):
            meta = dict(meta)
            meta["graph"] = self._read_large_graph(run_id, meta.pop(_GRAPH_PARTS))
            return Run.model_validate({**item.data, "metadata": meta})
        return Run.model_validate(item.data)

    def find_run(self, prefix: str) -> Run:
        """A run by id or by a unique prefix of it (as `fm runs show` accepts)."""
        try:
            return self.get_run(prefix)
        except NotFoundError:
            pass
        page = self.store.query(f"{self.ns}runs", prefix=prefix, limit=2)
        if len(page.items) == 1:
            return self.get_run(page.items[0].sk)
        if len(page.items) > 1:
            raise NotFoundError(f"run id prefix '{prefix}' is ambiguous", field="run_id", hint="give more characters")
        raise NotFoundError(f"no run with id '{prefix}'", field="run_id", hint="`fm runs` lists the recorded runs")

    def stage_results(self, run_id: str) -> list[StageResult]:
        self.flush()  # read your own writes
        out = [StageResult.model_validate(i.data) for i in self.store.query_all(self._run_pk(run_id), prefix="stage#")]
        out.sort(key=lambda r: (r.started_at or 0, r.finished_at or 0))
        return out

    def checkpoint(self, run_id: str, stage_ids: "list[str] | None" = None) -> dict[str, StageResult]:
        """Finished main-graph stages of a run, for resuming it.

        With ``stage_ids`` (the plan's stages) and few of them, reads one
        item per stage: the partition also holds every foreach iteration
        (``stage#ID#N``), and after a fan-out of thousands of items a get
        per stage beats reading them all.
        """
        if stage_ids is not None and len(stage_ids) <= _POINT_READS:
            self.flush()
            out: dict[str, StageResult] = {}
            pk = self._run_pk(run_id)
            for sid in stage_ids:
                item = self.store.get(pk, f"stage#{sid}")
                if item is not None and item.data.get("status") in _FINISHED_VALUES:
                    out[sid] = StageResult.model_validate(item.data)
            return out
        return {r.stage_id: r for r in self.stage_results(run_id) if r.iteration is None and r.status in _FINISHED}

    def finished_iterations(self, run_id: str, stage_id: str, labels: "set[str]") -> dict[str, Any]:
        """Outputs of the completed iterations of ``stage_id`` whose label is in ``labels`` (by label).

        One read per label, never the stage's other iterations: a retried
        fan-out chunk reads its own items, not the thousands of the stage.
        """
        self.flush()
        out: dict[str, Any] = {}
        pk = self._run_pk(run_id)
        for label in sorted(labels):
            item = self.store.get(pk, f"stage#{stage_id}#{label}")
            if item is not None and item.data.get("status") == StageStatus.COMPLETED.value:
                out[label] = item.data.get("output")
        return out

    def active_runs(self, *, limit: int = 200, cursor: str | None = None) -> tuple[list[tuple[str, str]], str | None]:
        """Unfinished runs of every namespace, oldest first: ``([(namespace, run_id)], next cursor)``."""
        page = self.store.query(ACTIVE_PK, limit=limit, cursor=cursor)
        return [(i.data.get("ns") or "", i.data["run_id"]) for i in page.items if i.data.get("run_id")], page.cursor

    def list_runs(
        self, *, limit: int = 50, cursor: str | None = None, pipeline_id: str | None = None,
        status: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; returns (summaries, next cursor)."""
        pk = f"{self.ns}runs#p#{pipeline_id}" if pipeline_id else f"{self.ns}runs"
        out: list[dict[str, Any]] = []
        for _ in range(1000):  # bounded: a status filter may need several pages
            page: Page = self.store.query(pk, limit=limit, cursor=cursor, reverse=True)
            for item in page.items:
                if status and item.data.get("status") != status:
                    continue
                out.append(item.data)
            cursor = page.cursor
            if len(out) >= limit or not cursor:
                break
        return out[:limit], cursor

    def iter_runs(self) -> Iterator[dict[str, Any]]:
        cursor = None
        for _ in range(1_000_000):
            items, cursor = self.list_runs(limit=200, cursor=cursor)
            yield from items
            if not cursor:
                return

