"""Every recorded run has a lease and its pipeline, whoever started it (``fm run``, the Python API).

Runs hosted by ``Jobs`` (the API's, resumed ones) take their lease
themselves. Any other recorded run, on ``fm_run_started``, writes in one
transaction its lease (renewed by this process's heartbeat) and the
resolved pipeline it runs (``sk = "pipeline"``, with ``base``: the folder
its file references resolve against), so another process can tell that
its process died and resume it (``fm runs resume``, ``fm serve``'s
recovery). ``fm_run_finished`` releases the lease. Sub-pipeline runs live
and die with their parent: they get neither.
"""
from __future__ import annotations

import logging
from typing import Any

from flowmason.kernel import blobs
from flowmason.kernel.errors import ItemTooLargeError, StorageError, ValueNotStoredError
from flowmason.kernel.runs import recording_repository
from flowmason.kernel.storage import Op

from . import leases

log = logging.getLogger("flowmason.durable")

_mine: dict[str, leases.Lease] = {}  # run id -> the lease this module took for it
# the last pipelines dumped, by object: a process that runs one pipeline many times dumps it once
_dumped: dict[int, tuple[Any, dict[str, Any]]] = {}
_too_big: dict[int, dict[str, Any]] = {}  # pipelines whose definition did not fit, already reported


def _definition(pipeline: Any) -> dict[str, Any]:
    hit = _dumped.get(id(pipeline))
    if hit is not None and hit[0] is pipeline:
        return hit[1]
    definition = pipeline.model_dump(mode="json", exclude_none=True)
    if len(_dumped) >= 32:
        _dumped.clear()
    _dumped[id(pipeline)] = (pipeline, definition)
    return definition


def run_started(run: Any, pipeline: Any) -> None:
    if run.metadata.get("parent_run_id"):
        return
    repo = recording_repository(run.id)
    if repo is None:
        return  # not recorded: nothing to resume
    pk = repo.partition(run.id)
    if leases.holding(pk) is not None or run.id in _mine:
        return  # a host runs it here and holds its lease
    take = leases.lease_op(pk)
    definition = _definition(pipeline)
    ops = [take, Op("put", pk, "pipeline", {"definition": definition, "version": None, "base": run.metadata.get("base")})]
    if _too_big.get(id(pipeline)) is definition:
        ops = [take]  # known not to fit: don't serialize it again on every run
    try:
        try:
            repo.store.transact(ops)
        except ItemTooLargeError:
            try:  # kept whole in the blob store (the same blob for every run of this definition)
                packed = blobs.pack(repo.store, repo.ns, ops[1].data or {}, ("definition",),
                                    where=f"run '{run.id}', its pipeline")
                repo.store.transact([take, Op("put", pk, "pipeline", packed)])
            except ValueNotStoredError as exc:
                if definition is not _too_big.get(id(pipeline)):
                    _too_big[id(pipeline)] = definition  # said once per pipeline, not on every run of it
                    log.warning("run %s: its pipeline cannot be stored with it (%s); it cannot be resumed elsewhere",
                                run.id, exc)
                repo.store.transact([take])
    except StorageError as exc:  # the lease is taken, or the store failed: the run goes on regardless
        log.warning("run %s has no lease: %s", run.id, exc)
        return
    _mine[run.id] = leases.adopt(repo.store, pk, "lease", dict(take.data))


def run_finished(run: Any, pipeline: Any) -> None:
    lease = _mine.pop(run.id, None)
    if lease is not None:
        lease.release()

