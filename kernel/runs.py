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

from . import blobs
from .errors import ItemTooLargeError, NotFoundError, StorageError, TransactionError, ValueNotStoredError
from .model import Run, RunStatus, StageResult, StageStatus
from .storage import MAX_ITEM_BYTES, Op, Page, Store
from .storage_codec import dumps

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
# the values of a stage result and of a run that may be larger than an item (they go to the blob store)
_STAGE_VALUES = ("output", "input", "error")
_RUN_VALUES = ("output", "inputs", "error")


DEFAULT_ORG = "default"

# ids are "run_" + 13 hex digits of milliseconds + 10 random hex digits (model.new_run_id)
_SHORT_AT = len("run_") + 13
SHORT_ID_LEN = 8
MIN_SHORT_ID = 4  # fewer hex digits would match by chance too often to be worth a scan of the listing
_AMBIGUOUS_SHOWN = 5
# sort keys only the run's own recording writes: stage results, graph slices, its event log
_RUN_OWN = ("stage#", "graph#", "event")


def short_id(run_id: str) -> str:
    """The few characters that tell a run apart (its random part), as `fm runs` shows them."""
    if run_id.startswith("run_") and len(run_id) > _SHORT_AT:
        return run_id[_SHORT_AT:_SHORT_AT + SHORT_ID_LEN]
    return run_id


def id_floor(ts: float) -> str:
    """The smallest run id made at or after epoch ``ts``: run ids sort by the time they were made."""
    return f"run_{max(0, int(ts * 1000)):013x}"


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
        # the first value that could not be stored: the run fails with it (see ``stage_recorded``)
        self.failure: ValueNotStoredError | None = None
        self._blobs_written: set[str] = set()  # blob keys written by this repository (not written twice)

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
        """Write the final record. A run that would end ``completed`` after one of its values could not be
        stored is recorded ``failed`` with that error instead, and the error is raised (the executor fails the run)."""
        from .retention import run_expiry

        _RECORDING.pop(run.id, None)
        self.flush()
        failure = self.failure if run.status is RunStatus.COMPLETED else None
        if failure is not None:
            run = run.model_copy(update={"status": RunStatus.FAILED, "error": failure.to_dict()})
        expires_at = run_expiry(run)
        if expires_at is not None:
            self._expire_partition(run.id, expires_at)
        try:
            self._write_run(run, expires_at)
        except ValueNotStoredError as exc:
            failed = {"status": RunStatus.FAILED, "output": None, "error": exc.to_dict()}
            try:
                self._write_run(run.model_copy(update=failed), expires_at)
            except ValueNotStoredError:  # the inputs do not fit either
                self._write_run(run.model_copy(update={**failed, "inputs": {}}), expires_at)
            raise
        if failure is not None:
            raise failure

    def _expire_partition(self, run_id: str, expires_at: float) -> None:
        """Give every item of a finished run's partition ``expires_at`` (an earlier expiry stays).

        Before the run item: should the process die in between, the run is
        still listed and ``fm runs prune`` removes it whole. ``restore``
        keeps each item's version where the backend has it.
        """
        from .errors import ConditionFailedError
        from .storage import Item

        pk = self._run_pk(run_id)
        mine, hosts = [], []  # what only this run writes, and the hosts' bookkeeping (a lease renewed meanwhile)
        for i in self.store.query_all(pk, page_size=500):
            if i.sk == "meta" or (i.expires_at is not None and i.expires_at <= expires_at):
                continue  # an item that expires sooner anyway (a lease) is left alone: no write races its owner
            item = Item(i.pk, i.sk, i.data, i.version, expires_at)
            (mine if i.sk.startswith(_RUN_OWN) else hosts).append(item)
        restore = getattr(self.store, "restore", None)
        if callable(restore):
            restore(mine)  # in batches, versions kept: nothing else writes these once the run ended
        else:
            hosts += mine
        for i in hosts:
            try:
                self.store.put(pk, i.sk, i.data, if_version=i.version, expires_at=i.expires_at)
            except ConditionFailedError:
                pass  # its writer moved on (a last lease renewal); that writer deletes it when it lets go

    def stage_recorded(self, run: Run, result: StageResult) -> None:
        """Checkpoint one stage result (group-committed, see the class docstring).

        A value that cannot be stored whole (``ValueNotStoredError``) is
        found when its group is written: that stage is recorded ``failed``
        with the error, and the next stage to finish (or the run's end)
        raises it, so the run fails instead of completing with a value its
        resume could not read back.
        """
        if self.failure is not None:
            raise self.failure
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
        else:
            self._pending.append((pk, sk, data))
            if len(self._pending) >= self.GROUP_LIMIT:
                self.flush()
            elif not self._flush_scheduled:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    self.flush()
                else:
                    self._flush_scheduled = True
                    loop.call_later(self.GROUP_WINDOW_S, self.flush)
        if self.failure is not None:
            raise self.failure

    def flush(self) -> None:
        """Write the stage results recorded since the last flush (one batch).

        Never raises ``ValueNotStoredError`` (it runs from the event loop's
        timer): the stage is recorded failed and ``self.failure`` is set.
        """
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
            try:
                self.store.put(pk, sk, data)
                return
            except (TypeError, ValueError):
                data = _jsonable(data)
                self.store.put(pk, sk, data)
                return
            except ItemTooLargeError:
                pass
            where = f"run '{pk.rsplit('run#', 1)[-1]}', stage '{data.get('stage_id')}'"
            if data.get("iteration") is not None:
                where += f" (iteration {data['iteration']})"
            try:
                dumps(data)
            except TypeError:  # a value JSON cannot hold: store what ``str`` makes of it, as for small ones
                data = _jsonable(data)
            packed = blobs.pack(self.store, self.ns, data, _STAGE_VALUES, where=where, written=self._blobs_written)
            try:
                self.store.put(pk, sk, packed)
            except ItemTooLargeError:  # the backend counts size its own way (DynamoDB): move every value out
                packed = blobs.pack(self.store, self.ns, data, _STAGE_VALUES, where=where, budget=0,
                                    written=self._blobs_written)
                self.store.put(pk, sk, packed)
        except ValueNotStoredError as exc:
            exc.stage = exc.stage or data.get("stage_id")
            self.failure = self.failure or exc
            failed = {**data, "status": StageStatus.FAILED.value, "input": None, "output": None, "error": exc.to_dict()}
            self.store.put(pk, sk, failed)

    def _write_run(self, run: Run, expires_at: float | None = None) -> None:
        data = run.model_dump(mode="json")
        self._write_large_graph(run.id, data)
        try:
            size = len(json.dumps(data).encode())
        except (TypeError, ValueError):
            data = _jsonable(data)
            size = len(json.dumps(data).encode())
        if size > _VALUE_BUDGET:
            data = blobs.pack(self.store, self.ns, data, _RUN_VALUES, where=f"run '{run.id}'", budget=_VALUE_BUDGET,
                              written=self._blobs_written)
        try:
            self._transact_run(run, data)
        except ItemTooLargeError:  # the backend counts size its own way (DynamoDB): move every value out
            self._transact_run(run, blobs.pack(self.store, self.ns, data, _RUN_VALUES, where=f"run '{run.id}'",
                                               budget=0, written=self._blobs_written))

    def _transact_run(self, run: Run, data: dict[str, Any]) -> None:
        summary = {k: data.get(k) for k in _SUMMARY_FIELDS}
        active = (Op("put", ACTIVE_PK, self.ns + run.id, {"ns": self.ns, "run_id": run.id})
                  if run.status in (RunStatus.PENDING, RunStatus.RUNNING) else Op("delete", ACTIVE_PK, self.ns + run.id))
        self.store.transact([
            Op("put", self._run_pk(run.id), "meta", data, expires_at=expires_at),
            Op("put", f"{self.ns}runs", run.id, summary, expires_at=expires_at),
            Op("put", f"{self.ns}runs#p#{run.pipeline_id}", run.id, summary, expires_at=expires_at),
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
        """The run with every value whole (those kept in the blob store are read back)."""
        return self._load_run(run_id, values=True)[0]

    def run_and_refs(self, run_id: str) -> tuple[Run, dict[str, dict[str, Any]]]:
        """The run with the values kept in the blob store left out (their defaults), and their references (field -> ref).

        For hosts that answer with a size limit (the HTTP API on Lambda):
        they read each value with ``read_value`` or hand out a link to it.
        """
        return self._load_run(run_id, values=False)

    def _load_run(self, run_id: str, *, values: bool) -> tuple[Run, dict[str, dict[str, Any]]]:
        item = self.store.get(self._run_pk(run_id), "meta")
        if item is None:
            raise NotFoundError(f"no run with id '{run_id}'", field="run_id", hint="`fm runs` lists the recorded runs")
        data, refs = self._values(item.data, run_id, None, values)
        meta = data.get("metadata")
        if isinstance(meta, dict) and meta.get(_GRAPH_PARTS):
            meta = dict(meta)
            meta["graph"] = self._read_large_graph(run_id, meta.pop(_GRAPH_PARTS))
            data = {**data, "metadata": meta}
        return Run.model_validate(data), refs

    def _values(self, data: dict[str, Any], run_id: str, stage: "str | None", values: bool,
                ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """(data with blob-held values read back, or left None when not ``values``; their references)."""
        refs = data.get(blobs.REFS)
        if not refs:  # one dict lookup for an item that holds its values itself
            return data, {}
        if not values:  # the moved fields are left out: the model's defaults stand in for them
            return {k: v for k, v in data.items() if k != blobs.REFS and k not in refs}, refs
        where = f"run '{run_id}'" + (f", stage '{stage}'" if stage else "")
        return blobs.unpack(self.store, data, where=where), refs

    def _unpack(self, data: dict[str, Any], run_id: str, stage: "str | None" = None) -> dict[str, Any]:
        return self._values(data, run_id, stage, True)[0]

    def _result(self, data: dict[str, Any], run_id: str, values: bool = True) -> StageResult:
        return StageResult.model_validate(self._values(data, run_id, data.get("stage_id"), values)[0])

    def read_value(self, ref: dict[str, Any], *, where: str) -> bytes:
        """The JSON text (UTF-8) of one value kept in the blob store, by its reference."""
        return blobs.read_raw(self.store, ref, where=where)

    def value_link(self, ref: dict[str, Any], *, expires_s: int = 300) -> str | None:
        """A time-limited download URL of a blob-held value, when the blob store offers them (S3), else None."""
        return self.store.blobs.presigned_url(ref["key"], expires_s=expires_s) if self.store.blobs else None

    def stage_record(self, run_id: str, stage_id: str, iteration: str | None = None,
                     ) -> tuple[StageResult, dict[str, dict[str, Any]]]:
        """One stage result with its blob-held values left out, and their references (see ``run_and_refs``)."""
        self.flush()
        sk = f"stage#{stage_id}" if iteration is None else f"stage#{stage_id}#{iteration}"
        item = self.store.get(self._run_pk(run_id), sk)
        if item is None:
            where = f"stage '{stage_id}'" + (f" (iteration {iteration})" if iteration is not None else "")
            raise NotFoundError(f"run '{run_id}' has no result for {where}", field="stage_id",
                                hint="GET /runs/{run_id}/stages lists its stage results")
        data, refs = self._values(item.data, run_id, stage_id, False)
        return StageResult.model_validate(data), refs

    def stage_page(self, run_id: str, *, limit: int = 50, cursor: str | None = None,
                   ) -> tuple[list[tuple[str, StageResult, dict[str, dict[str, Any]]]], str | None]:
        """One page of a run's stage results in sort-key order (stage id, then iteration), blob values left out.

        Returns ``([(sort key, result, references)], next cursor)``; the
        cursor is the store's (the last sort key, opaque), so a caller that
        stops early can make one from a sort key with
        ``storage_codec.encode_cursor``.
        """
        self.flush()
        page = self.store.query(self._run_pk(run_id), prefix="stage#", limit=limit, cursor=cursor)
        out = []
        for item in page.items:
            data, refs = self._values(item.data, run_id, item.data.get("stage_id"), False)
            out.append((item.sk, StageResult.model_validate(data), refs))
        return out, page.cursor

    def find_run(self, ref: str) -> Run:
        """A run by id, by a unique prefix of it, by a unique prefix of its short id, or ``last``.

        Every command that takes a run id resolves it here. Run ids start
        with a timestamp, so runs of one day share a long prefix; the short
        id (``short_id``: the random part, as `fm runs` shows it) tells them
        apart in a few characters, like git's abbreviated hashes.
        """
        ref = ref.strip()
        if ref in ("last", "latest"):
            items, _ = self.list_runs(limit=1)
            if not items:
                raise NotFoundError("no runs recorded yet", field="run_id", hint="`fm run PIPELINE` records one")
            return self.get_run(items[0]["id"])
        try:
            return self.get_run(ref)
        except NotFoundError:
            pass
        matches = [i.sk for i in self.store.query(f"{self.ns}runs", prefix=ref, limit=_AMBIGUOUS_SHOWN).items] if ref else []
        if not matches and len(ref) >= MIN_SHORT_ID and all(c in "0123456789abcdef" for c in ref.lower()):
            wanted = ref.lower()
            for item in self.store.query_all(f"{self.ns}runs", page_size=1000):  # the listing: small summaries
                if item.sk[_SHORT_AT:].startswith(wanted):
                    matches.append(item.sk)
                    if len(matches) >= _AMBIGUOUS_SHOWN:
                        break
        if len(matches) == 1:
            return self.get_run(matches[0])
        if matches:
            raise NotFoundError(f"run id '{ref}' is ambiguous: it matches {', '.join(matches)}"
                                + (" and more" if len(matches) >= _AMBIGUOUS_SHOWN else ""),
                                field="run_id", hint="give more characters")
        raise NotFoundError(f"no run with id '{ref}'", field="run_id",
                            hint="`fm runs` lists the recorded runs (their short ids work too, and `last`)")

    def stage_results(self, run_id: str, *, values: bool = True) -> list[StageResult]:
        """Every stage result of a run, by start time; ``values=False`` leaves blob-held values out (None: not read)."""
        self.flush()  # read your own writes
        out = [self._result(i.data, run_id, values) for i in self.store.query_all(self._run_pk(run_id), prefix="stage#")]
        out.sort(key=lambda r: (r.started_at or 0, r.finished_at or 0))
        return out

    def checkpoint(self, run_id: str, stage_ids: "list[str] | None" = None, *,
                   iterations: bool = False) -> dict[str, StageResult]:
        """Finished main-graph stages of a run, for resuming it.

        With ``stage_ids`` (the plan's stages) and few of them, reads one
        item per stage: the partition also holds every foreach iteration
        (``stage#ID#N``), and after a fan-out of thousands of items a get
        per stage beats reading them all. With ``iterations`` (a replay,
        whose kept loop results were copied in) every finished instance,
        keyed ``stage_id#iteration`` inside loops, as the executor reuses them.
        """
        if iterations:
            return {r.stage_id if r.iteration is None else f"{r.stage_id}#{r.iteration}": r
                    for r in self.stage_results(run_id) if r.status in _FINISHED}
        if stage_ids is not None and len(stage_ids) <= _POINT_READS:
            self.flush()
            out: dict[str, StageResult] = {}
            pk = self._run_pk(run_id)
            for sid in stage_ids:
                item = self.store.get(pk, f"stage#{sid}")
                if item is not None and item.data.get("status") in _FINISHED_VALUES:
                    out[sid] = self._result(item.data, run_id)
            return out
        return {r.stage_id: r for r in self.stage_results(run_id) if r.iteration is None and r.status in _FINISHED}

    def finished_iterations(self, run_id: str, stage_id: str, labels: "set[str]") -> dict[str, Any]:
        """Outputs of the completed iterations of ``stage_id`` whose label is in ``labels`` (by label)."""
        self.flush()
        out: dict[str, Any] = {}
        for item in self.store.query_all(self._run_pk(run_id), prefix=f"stage#{stage_id}#"):
            label = item.data.get("iteration")
            if label in labels and item.data.get("status") == StageStatus.COMPLETED.value:
                out[label] = self._unpack(item.data, run_id, stage_id).get("output")
        return out

    def active_runs(self, *, limit: int = 200, cursor: str | None = None) -> tuple[list[tuple[str, str]], str | None]:
        """Unfinished runs of every namespace, oldest first: ``([(namespace, run_id)], next cursor)``."""
        page = self.store.query(ACTIVE_PK, limit=limit, cursor=cursor)
        return [(i.data.get("ns") or "", i.data["run_id"]) for i in page.items if i.data.get("run_id")], page.cursor

    def list_runs(
        self, *, limit: int = 50, cursor: str | None = None, pipeline_id: str | None = None,
        status: str | None = None, since: float | None = None, before: float | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; returns (summaries, next cursor). ``since``/``before``: epoch seconds the run was made in."""
        pk = f"{self.ns}runs#p#{pipeline_id}" if pipeline_id else f"{self.ns}runs"
        start = id_floor(since) if since is not None else None
        end = id_floor(before) if before is not None else None
        out: list[dict[str, Any]] = []
        for _ in range(1000):  # bounded: a status filter may need several pages
            page: Page = self.store.query(pk, start=start, end=end, limit=limit, cursor=cursor, reverse=True)
            for item in page.items:
                if status and item.data.get("status") != status:
                    continue
                out.append(item.data)
            cursor = page.cursor
            if len(out) >= limit or not cursor:
                break
        return out[:limit], cursor

    def delete_run(self, run_id: str, *, if_version: int | None = None) -> bool:
        """Remove a run and everything in its partition; False when it changed or went meanwhile.

        The run item and its listing entries go first, in one transaction
        that holds only if the run item is still at ``if_version`` (the one
        the caller judged), so a run that was resumed meanwhile stays whole.
        From then on no reader can reach the run; its stage results, events
        and bookkeeping are deleted after, item by item.
        """
        pk = self._run_pk(run_id)
        meta = self.store.get(pk, "meta")
        if meta is None or (if_version is not None and meta.version != if_version):
            return False
        try:
            self.store.transact([
                Op("delete", pk, "meta", if_version=meta.version),
                Op("delete", f"{self.ns}runs", run_id),
                Op("delete", f"{self.ns}runs#p#{meta.data.get('pipeline_id')}", run_id),
                Op("check", ACTIVE_PK, self.ns + run_id, if_absent=True),  # never a run that is going on
            ])
        except TransactionError:
            return False
        for item in list(self.store.query_all(pk, page_size=500)):
            self.store.delete(pk, item.sk)
        return True

    def iter_runs(self) -> Iterator[dict[str, Any]]:
        cursor = None
        for _ in range(1_000_000):
            items, cursor = self.list_runs(limit=200, cursor=cursor)
            yield from items
            if not cursor:
                return

