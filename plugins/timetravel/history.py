"""Reading snapshots back: the timeline of a run, the state at any snapshot, diffs.

``load_timeline(repo, run_id)`` reads the run (``RunRepository``), its
stored stage results and the snapshot log written by ``recorder.py``, and
returns a ``Timeline``. Everything after that is pure computation on it:
``state(seq)`` is the complete state at a snapshot (run inputs, every
stage's status, rendered inputs, output, error, timing and usage as of that
boundary, running usage totals); ``step`` moves back and forth;
``diff_states`` compares two states (of one run or of two runs).

Errors name the run and snapshot and what to do: an unknown run or
snapshot, a run that was never snapshotted, and snapshots removed by
retention (the ``expiry`` marker outlives them to tell the difference).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from flowmason.kernel import blobs
from flowmason.kernel.errors import InputError, NotFoundError
from flowmason.kernel.model import Pipeline, Run, StageResult

from .recorder import (FAILED, FINISHED, RESTORED, RUN_ENDED, RUN_STARTED, SKIPPED, STARTED, pipe_pk, tt_pk)

KIND_NAMES = {
    RUN_STARTED: "run.started", STARTED: "stage.started", FINISHED: "stage.finished", FAILED: "stage.failed",
    SKIPPED: "stage.skipped", RESTORED: "stage.restored", RUN_ENDED: "run.finished",
}
_SETTLED_STATUS = {FINISHED: "completed", FAILED: "failed", SKIPPED: "skipped", RESTORED: None}


class SnapshotExpiredError(NotFoundError):
    """The snapshots existed but retention removed them."""

    code = "snapshot_expired"
    http_status = 410


class NoSnapshotsError(NotFoundError):
    code = "no_snapshots"
    http_status = 404


@dataclass(frozen=True)
class Snapshot:
    seq: int
    t_ms: float
    kind: str
    stage_id: str | None
    iteration: str | None  # for run.finished: the run status

    @property
    def key(self) -> str | None:
        if self.stage_id is None:
            return None
        return self.stage_id if not self.iteration else f"{self.stage_id}#{self.iteration}"

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"seq": self.seq, "t_ms": self.t_ms, "kind": KIND_NAMES.get(self.kind, self.kind),
                             "stage_id": self.stage_id}
        if self.kind == RUN_ENDED:
            d["run_status"] = self.iteration
        elif self.iteration:
            d["iteration"] = self.iteration
        return d


def result_key(r: StageResult) -> str:
    return r.stage_id if r.iteration is None else f"{r.stage_id}#{r.iteration}"


@dataclass
class Timeline:
    run: Run
    head: dict[str, Any]
    snapshots: list[Snapshot]
    results: dict[str, StageResult]
    pipeline: Pipeline | None
    stage_ids: list[str] = field(default_factory=list)

    @property
    def last(self) -> int:
        return len(self.snapshots) - 1

    def snapshot(self, seq: int) -> Snapshot:
        if not isinstance(seq, int) or seq < 0 or seq > self.last:
            raise NotFoundError(
                f"run '{self.run.id}' has no snapshot {seq} (it has snapshots 0 to {self.last})",
                field="snapshot", hint=f"`fm debug timeline {self.run.id}` lists them",
            )
        return self.snapshots[seq]

    def step(self, seq: int, delta: int) -> int:
        """The snapshot ``delta`` steps from ``seq``, clamped to the first and last."""
        self.snapshot(seq)
        return max(0, min(self.last, seq + delta))

    def finished_by(self, seq: int) -> set[str]:
        """Keys of the stages settled (or restored) at or before ``seq``."""
        self.snapshot(seq)
        return {s.key for s in self.snapshots[: seq + 1] if s.kind in _SETTLED_STATUS and s.key}

    def state(self, seq: int) -> dict[str, Any]:
        """The complete state of the run as of snapshot ``seq``."""
        snap = self.snapshot(seq)
        stages: dict[str, dict[str, Any]] = {sid: {"status": "pending"} for sid in self.stage_ids}
        usage: dict[str, float] = {}
        run_status = "running"
        for s in self.snapshots[: seq + 1]:
            if s.kind == RUN_STARTED:  # also a resumed invocation after a pause
                run_status = "running"
                continue
            if s.kind == RUN_ENDED:
                run_status = s.iteration or "finished"
                continue
            if s.stage_id is None:
                continue
            if s.kind == STARTED:
                entry = stages.setdefault(s.key or s.stage_id, {})
                entry["status"] = "running"
                r = self.results.get(s.key or s.stage_id)
                entry["input"] = r.input if r is not None else None
                entry["started_ms"] = s.t_ms
                continue
            r = self.results.get(s.key or "")
            entry = stages.setdefault(s.key or s.stage_id, {})
            status = _SETTLED_STATUS.get(s.kind) or (r.status.value if r is not None else "completed")
            entry["status"] = status
            entry["settled_ms"] = s.t_ms
            if s.kind == RESTORED:
                entry["restored"] = True
            if r is not None:
                entry.update(input=r.input, output=r.output, error=r.error, duration_ms=r.duration_ms,
                             attempts=r.attempts, usage=r.usage, component_type=r.component_type)
                for k, v in (r.usage or {}).items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        usage[k] = usage.get(k, 0) + v
        counts: dict[str, int] = {}
        for entry in stages.values():
            counts[entry.get("status", "pending")] = counts.get(entry.get("status", "pending"), 0) + 1
        return {
            "run": {"id": self.run.id, "pipeline_id": self.run.pipeline_id, "status": run_status,
                    "inputs": self.run.inputs, "replay_of": self.head.get("replay_of")},
            "snapshot": snap.describe(),
            "elapsed_ms": snap.t_ms,
            "stages": stages,
            "counts": counts,
            "usage": usage,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "run_id": self.run.id,
            "pipeline_id": self.run.pipeline_id,
            "status": self.run.status.value,
            "pipeline_hash": self.head.get("pipeline_hash"),
            "expires_at": self.head.get("expires_at"),
            "replay_of": self.head.get("replay_of"),
            "snapshots": [s.describe() for s in self.snapshots],
        }


def load_timeline(repo: Any, run_ref: str) -> Timeline:
    """The timeline of a run (id or unique id prefix) from ``repo`` (a ``RunRepository``)."""
    run = repo.find_run(run_ref)
    store, ns = repo.store, repo.ns
    pk = tt_pk(ns, run.id)
    chunks = list(store.query_all(pk, prefix="log#"))
    heads = [c.data["head"] for c in chunks if "head" in c.data]
    if not heads:
        marker = store.get(pk, "expiry")
        if marker is not None and marker.data.get("snapshots_expire_at", 0) <= time.time():
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(marker.data["snapshots_expire_at"]))
            raise SnapshotExpiredError(
                f"the snapshots of run '{run.id}' were removed by retention on {when}",
                field="run_id",
                hint="replay needs snapshots: rerun the pipeline, or raise FM_SNAPSHOT_RETENTION_DAYS for future runs",
            )
        raise NoSnapshotsError(
            f"run '{run.id}' has no snapshots (time travel was not on when it ran, or it is still starting)",
            field="run_id", hint="runs recorded with the timetravel plugin loaded get snapshots",
        )
    head = heads[0]  # the first invocation's; a resumed one repeats it
    logged = [e for c in chunks for e in _entries(c.data)]  # chunks come in time order
    results = {result_key(r): r for r in repo.stage_results(run.id)}
    snapshots = _with_starts(logged, results, float(head.get("started_at") or run.started_at or 0.0))
    pipeline = None
    pdef = store.get(pipe_pk(ns, head.get("pipeline_hash", "")), "def")
    if pdef is not None:
        pipeline = Pipeline.model_validate(blobs.unpack(store, pdef.data, where=f"run '{run.id}', its pipeline")["pipeline"])
    stage_ids = [s.id for s in pipeline.stages] if pipeline is not None else sorted({r.stage_id for r in results.values()})
    return Timeline(run=run, head=head, snapshots=snapshots, results=results, pipeline=pipeline, stage_ids=stage_ids)


def recorded_pipeline(repo: Any, run_id: str) -> Pipeline | None:
    """The pipeline definition recorded with the run, or None (never snapshotted, or expired)."""
    try:
        return load_timeline(repo, run_id).pipeline
    except NotFoundError:
        return None


def _entries(chunk: dict[str, Any]) -> list[list[Any]]:
    """A stored chunk's columns back as ``[t_ms, code, stage_id, extra]`` rows."""
    extras = {int(i): x for i, x in chunk.get("x") or ()}
    return [[t / 100, c, s, extras.get(i)] for i, (t, c, s) in enumerate(zip(chunk["t"], chunk["c"], chunk["s"], strict=True))]


def _with_starts(logged: list[list[Any]], results: dict[str, StageResult], t0: float) -> list[Snapshot]:
    """The log with each settled stage's start snapshot put back (from its stored result), numbered in time order.

    A start never goes after its own settle: when the stored result is a later
    attempt (a resumed run re-ran the stage), the start sits just before it.
    """
    ranked: list[tuple[float, float, str, str | None, Any]] = []
    for rank, e in enumerate(logged):
        t, code, sid, extra = float(e[0]), e[1], e[2], e[3] if len(e) > 3 else None
        ranked.append((t, rank, code, sid, extra))
        if code in (FINISHED, FAILED) and sid is not None:
            r = results.get(sid if not extra else f"{sid}#{extra}")
            start = (r.started_at - t0) * 1000 if r is not None and r.started_at else t
            ranked.append((min(round(start, 2), t), rank - 0.5, STARTED, sid, extra))
    ranked.sort(key=lambda x: (x[0], x[1]))
    return [Snapshot(i, t, code, sid, extra) for i, (t, _, code, sid, extra) in enumerate(ranked)]


def parse_ref(ref: str, default_run: str | None = None) -> tuple[str, int]:
    """``RUN@SEQ`` (or a bare ``SEQ`` with ``default_run``) -> (run id, seq)."""
    run_part, sep, seq_part = ref.rpartition("@")
    if not sep:
        run_part, seq_part = default_run or "", ref
    if not run_part:
        raise InputError(f"snapshot reference '{ref}' names no run", field="snapshot",
                             hint="write RUN_ID@SEQ, e.g. run_0193...@4")
    try:
        seq = int(seq_part)
    except ValueError:
        raise InputError(f"snapshot reference '{ref}': '{seq_part}' is not a snapshot number", field="snapshot",
                             hint="write RUN_ID@SEQ with SEQ a number from `fm debug timeline RUN_ID`") from None
    return run_part, seq


def diff_states(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What differs between two states: stage status, inputs, outputs, errors; usage and time deltas."""
    stages: dict[str, dict[str, Any]] = {}
    for key in sorted(set(a["stages"]) | set(b["stages"])):
        sa, sb = a["stages"].get(key, {"status": "absent"}), b["stages"].get(key, {"status": "absent"})
        change: dict[str, Any] = {}
        for fld in ("status", "input", "output", "error"):
            va, vb = sa.get(fld), sb.get(fld)
            if va != vb:
                change[fld] = {"a": va, "b": vb}
        if change:
            stages[key] = change
    usage = {k: b["usage"].get(k, 0) - a["usage"].get(k, 0) for k in sorted(set(a["usage"]) | set(b["usage"]))}
    return {
        "a": {"run_id": a["run"]["id"], **a["snapshot"]},
        "b": {"run_id": b["run"]["id"], **b["snapshot"]},
        "elapsed_ms": b["elapsed_ms"] - a["elapsed_ms"],
        "inputs": None if a["run"]["inputs"] == b["run"]["inputs"] else {"a": a["run"]["inputs"], "b": b["run"]["inputs"]},
        "stages": stages,
        "usage": {k: v for k, v in usage.items() if v},
    }
