"""The snapshot recorder: one snapshot at every stage boundary of a recorded run.

Why snapshots are pointers, not copies: the executor's recorder
(``kernel.runs.RunRepository``) already checkpoints every ``StageResult`` —
the stage's rendered inputs, output, error, timing and model usage — once,
in the run's partition. A snapshot adds what that checkpoint lacks: *when*
each boundary happened and in what order (stage started / finished / failed /
skipped, run started / ended). The complete state at snapshot N is that
ordered log up to N laid over the stored results (``history.Timeline``).
Storing only the log keeps a snapshot to a few dozen bytes and the
per-stage cost to a few list appends, which is how the overhead target
(≤ 20 % over recording alone, ``bench/debug.py``) is met. For the same
reason a stage's *start* boundary is not logged: a pluggy call per stage
costs more than the rest of the snapshot; the start time is in the stored
result, and ``history`` puts the start snapshot back in its place when it
reads the log. (The price: a stage that is running right now appears in the
timeline when it settles.)

Writes are batched: entries collect in memory and go to the store as one
item per chunk when the chunk is full, after a short
interval (a timer on the run's event loop, so a long stage still shows as
started), and when the run ends. A failing snapshot write never fails the
run: the snapshots of that run stop and the reason is logged.

Item layout (partition ``{ns}tt#{run_id}``; every item expires with the
retention period, ``expires_at``):

    sk = "log#<µs>#<n>"  one chunk, by columns: {"t": [time from the run's start in 10 µs
                         units, ...], "c": "RFFK…E" (a code per entry), "s": [stage id or
                         null, ...], "x": [[index, iteration or run status], ...] (sparse)}; µs: its
                         first entry's time from the run's start, so chunks sort in time order
                         and a run resumed by another invocation (the worker) adds chunks
                         without reading the earlier ones; snapshot numbers are given at read
                         time. An invocation's first chunk also has "head": {pipeline hash,
                         retention, replay origin}.
    sk = "expiry"        {"snapshots_expire_at": ...} kept longer, so a read
                         after cleanup can say "removed by retention"
    pk = "{ns}ttpipe#{hash}", sk = "def"   the pipeline definition, once per version

Codes: R run started, S stage started (made by ``history``), F finished, X failed, K skipped,
P restored from the replayed run, E run ended (the iteration slot holds
the run status).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from typing import Any

from flowmason.kernel import blobs
from flowmason.kernel.storage import Op

log = logging.getLogger("flowmason.timetravel")

DEFAULT_RETENTION_DAYS = 14.0
# how long the "expiry" marker outlives the snapshots it describes
TOMBSTONE_GRACE_S = 90 * 86400.0
CHUNK_ENTRIES = 1000  # ~25 KB of JSON: one write per chunk, far under the 400 KB item limit
FLUSH_INTERVAL_S = 0.5

# how often a process asks a store that has no TTL of its own (SQLite) to drop expired items
PURGE_INTERVAL_S = 3600.0

RUN_STARTED, STARTED, FINISHED, FAILED, SKIPPED, RESTORED, RUN_ENDED = "R", "S", "F", "X", "K", "P", "E"


def retention_seconds() -> float:
    """Snapshot retention: ``FM_SNAPSHOT_RETENTION_DAYS`` (default 14 days).

    A value that is not a number is logged and the default used (the
    setting is ``lenient`` in kernel/settings.py): a debugging aid's setting
    must not stop runs.
    """
    from flowmason.kernel.settings import get_settings

    return max(get_settings().snapshot_retention_days, 0.0) * 86400


def tt_pk(ns: str, run_id: str) -> str:
    return f"{ns}tt#{run_id}"


def pipe_pk(ns: str, digest: str) -> str:
    return f"{ns}ttpipe#{digest}"


def canonical_pipeline(pipeline: Any) -> tuple[dict[str, Any], str]:
    """The pipeline as JSON data and a short hash of it (what "changed since the run" compares)."""
    data = pipeline.model_dump(mode="json", exclude_none=True)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return data, hashlib.sha256(text.encode()).hexdigest()[:20]


class _RunLog:
    """The in-memory part of one live run's snapshots."""

    __slots__ = ("owner", "store", "ns", "run_id", "t0", "times", "codes", "stages", "extras", "expires_at", "head",
                 "timer", "dead", "chunks", "nonce")

    def __init__(self, owner: "SnapshotRecorder", store: Any, ns: str, run_id: str, t0: float, expires_at: float,
                 head: dict[str, Any]) -> None:
        self.owner = owner
        self.store = store
        self.ns = ns
        self.run_id = run_id
        self.t0 = t0
        # parallel columns of atoms, not a list per entry: no container objects for the
        # garbage collector to track on the hot path (per-entry lists cost more in GC than to build)
        self.times: list[float] = []
        self.codes: list[str] = []
        self.stages: list[str | None] = []
        self.extras: list[Any] = []  # (index, value) pairs: most entries have none
        self.expires_at = expires_at
        self.head: dict[str, Any] | None = head  # written with the first chunk
        self.timer: Any = None
        self.dead = False
        self.chunks = 0
        self.nonce = os.urandom(3).hex()  # tells two invocations' chunks apart should their clocks tie

    def add(self, code: str, stage_id: str | None, extra: Any = None) -> None:
        """One snapshot: the hot path, a few appends."""
        if self.dead:
            return
        times = self.times
        if extra is not None:
            self.extras.append([len(times), extra])
        times.append(time.time())
        self.codes.append(code)
        self.stages.append(stage_id)
        owner = self.owner
        if len(times) >= owner.chunk_entries:
            owner._flush(self)
        elif self.timer is None and owner.flush_interval_s > 0:
            import asyncio

            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop: the run's end flushes
            self.timer = loop.call_later(owner.flush_interval_s, owner._timed_flush, self)


class SnapshotRecorder:
    """Listens to the executor's event hooks and writes snapshots beside the recorded run.

    Registered as a plugin object (``__init__`` registers one by default).
    Runs that nobody records (``recorder=None``) get no snapshots: there
    would be no stage results for them to point at.
    """

    def __init__(self, *, retention_s: float | None = None, chunk_entries: int = CHUNK_ENTRIES,
                 flush_interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.retention_s = retention_s
        self.chunk_entries = chunk_entries
        self.flush_interval_s = flush_interval_s
        self._live: dict[str, _RunLog] = {}
        self._purged: dict[str, float] = {}  # store url -> when this process last purged it
        # pipeline object id -> (pipeline, data, digest, written-at per store id)
        self._pipelines: dict[int, tuple[Any, dict[str, Any], str, dict[int, float]]] = {}

    # -- event hooks (module-level wrappers in __init__ call these) --
    def run_started(self, run: Any, pipeline: Any) -> None:
        from flowmason.kernel.runs import recording_repository

        repo = recording_repository(run.id)
        if repo is None:
            return
        try:
            self._start(repo, run, pipeline)
        except Exception as exc:  # noqa: BLE001 - a snapshot failure must not fail the run
            log.warning("time travel: no snapshots for run %s: %s", run.id, exc)

    def _start(self, repo: Any, run: Any, pipeline: Any) -> None:
        retention = self.retention_s if self.retention_s is not None else retention_seconds()
        now = time.time()
        expires_at = now + retention
        digest = self._pipeline_digest(repo.store, repo.ns, pipeline, expires_at)
        head = {
            "run_id": run.id,
            "pipeline_id": run.pipeline_id,
            "pipeline_hash": digest,
            "started_at": run.started_at or now,
            "retention_s": retention,
            "expires_at": expires_at,
            "replay_of": run.metadata.get("replay_of"),
            "parent_run_id": run.metadata.get("parent_run_id"),
        }
        rl = _RunLog(self, repo.store, repo.ns, run.id, run.started_at or now, expires_at, head)
        self._live[run.id] = rl
        rl.add(RUN_STARTED, None)
        replay = run.metadata.get("replay_of") or {}
        ids = {s.id for s in getattr(pipeline, "stages", ())}
        for key in replay.get("resumed") or ():  # "stage" or "stage#iteration" (result_key)
            sid, _, iteration = (key, "", "") if key in ids else key.rpartition("#")
            rl.add(RESTORED, sid or key, iteration or None)

    def stage_settled(self, run: Any, result: Any, code: str) -> None:
        rl = self._live.get(run.id)
        if rl is not None:
            rl.add(code, result.stage_id, result.iteration)

    def run_finished(self, run: Any) -> None:
        rl = self._live.pop(run.id, None)
        if rl is None:
            return
        status = run.status.value if hasattr(run.status, "value") else str(run.status)
        rl.add(RUN_ENDED, None, status)
        if rl.timer is not None:  # this flush writes what the timer was waiting for
            rl.timer.cancel()
            rl.timer = None
        self._flush(rl)
        self._maybe_purge(rl.store)

    def _maybe_purge(self, store: Any) -> None:
        """Automatic cleanup: expired items are invisible at once; this removes them for good,
        at most once per ``PURGE_INTERVAL_S`` per store and process. DynamoDB's TTL does it itself."""
        purge = getattr(store, "purge_expired", None)
        if not callable(purge):
            return
        key = getattr(store, "url", "") or str(id(store))
        now = time.time()
        if now - self._purged.get(key, 0.0) < PURGE_INTERVAL_S:
            return
        self._purged[key] = now
        try:
            purge()
        except Exception as exc:  # noqa: BLE001 - housekeeping must not fail a run
            log.warning("time travel: purging expired snapshots failed: %s", exc)

    # -- internals --
    def _pipeline_digest(self, store: Any, ns: str, pipeline: Any, expires_at: float) -> str:
        """Hash the pipeline once per object; store its definition once per version and store."""
        cached = self._pipelines.get(id(pipeline))
        if cached is None or cached[0] is not pipeline:
            data, digest = canonical_pipeline(pipeline)
            if len(self._pipelines) > 256:
                self._pipelines.clear()
            cached = (pipeline, data, digest, {})
            self._pipelines[id(pipeline)] = cached
        _, data, digest, written = cached
        key = id(store)
        now = time.time()
        # re-put when half the retention has passed, so the definition outlives every run using it
        if now - written.get(key, 0.0) > (expires_at - now) / 2:
            try:
                blobs.put_whole(store, ns, pipe_pk(ns, digest), "def", {"pipeline": data, "hash": digest}, ("pipeline",),
                                where=f"pipeline {digest[:12]}", expires_at=expires_at)
                written[key] = now
            except Exception as exc:  # noqa: BLE001 - snapshots are best effort; the run goes on
                # said once per pipeline and store, not on every run of it (the timeline falls back to stage ids)
                written[key] = now
                log.warning("time travel: cannot store pipeline definition: %s", exc)
        return digest

    def _timed_flush(self, rl: _RunLog) -> None:
        rl.timer = None
        self._flush(rl)

    def _flush(self, rl: _RunLog) -> None:
        if rl.dead or not rl.times:
            return
        t0 = rl.t0
        times = [int((t - t0) * 100_000) for t in rl.times]  # 10 µs units: ints encode small and fast
        chunk: dict[str, Any] = {"t": times, "c": "".join(rl.codes), "s": rl.stages}
        if rl.extras:
            chunk["x"] = rl.extras
        rl.times, rl.codes, rl.stages, rl.extras = [], [], [], []
        pk = tt_pk(rl.ns, rl.run_id)
        sk = f"log#{max(times[0], 0) * 10:015d}#{rl.nonce}{rl.chunks:04d}"
        try:
            if rl.head is not None:  # the first chunk carries the head: one write transaction per short run
                chunk["head"] = rl.head
                rl.store.transact([
                    Op("put", pk, "expiry", {"snapshots_expire_at": rl.expires_at},
                       expires_at=rl.expires_at + TOMBSTONE_GRACE_S),
                    Op("put", pk, sk, chunk, expires_at=rl.expires_at),
                ])
                rl.head = None
            else:
                rl.store.put(pk, sk, chunk, expires_at=rl.expires_at)
            rl.chunks += 1
        except Exception as exc:  # noqa: BLE001 - a snapshot failure must not fail the run
            rl.dead = True
            log.warning("time travel: snapshots of run %s stopped: %s", rl.run_id, exc)
