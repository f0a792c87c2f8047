"""Replay a run from a snapshot, what-if runs, and side-by-side comparison.

``replay`` reruns a recorded run from snapshot N: the stage instances
settled at or before N are handed to the executor as ``resume``, keyed by
stage and iteration path (``risky#2``: loop iterations are kept one by
one; they are not re-run; their results are copied into the new run so it
is complete on its own), everything after is run again. Control-flow
stages always run again (cheap, and their skips and breaks must happen
again), and so does a failure that stopped the run (``executor.reusable``),
so a trycatch sees the failure it caught the first time. It runs the pipeline definition
stored with the run; a *current* definition can be passed to check it has
not changed since — if it has, the replay stops before writing anything and
the error lists what changed.

``what_if`` is a replay with changes: new input values and/or stage config
values. A changed stage, and every stage downstream of it, is re-run even if
it settled before the snapshot; so is a settled stage whose config reads a
changed input (``{{input.x}}``), every stage inside or gated by such a stage
and whatever waits for the loop or trycatch around one. ``compare_runs`` lines two runs up stage by
stage (status, duration, output) for the side-by-side view.

All checks (unknown run or snapshot, snapshots removed by retention, changed
pipeline, unknown stage in a change, a pipeline that no longer compiles)
happen before the first write.
"""
from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass, field
from typing import Any

from flowmason.kernel.errors import FlowMasonError, NotFoundError
from flowmason.kernel.executor import reusable
from flowmason.kernel.model import Pipeline, Run, StageResult, StageStatus

from .history import Timeline, load_timeline
from .recorder import canonical_pipeline


class PipelineChangedError(FlowMasonError):
    """The pipeline differs from the one the run used."""

    code = "pipeline_changed"
    http_status = 409

    def __init__(self, message: str, changes: list[str], **kw: Any) -> None:
        super().__init__(message + ":\n" + "\n".join(f"  - {c}" for c in changes), **kw)
        self.changes = changes

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["changes"] = self.changes
        return d


def pipeline_changes(old: Pipeline, new: Pipeline) -> list[str]:
    """Human-readable differences between two pipeline definitions (stages and top-level fields)."""
    a, _ = canonical_pipeline(old)
    b, _ = canonical_pipeline(new)
    out: list[str] = []
    sa = {s["id"]: s for s in a.get("stages", [])}
    sb = {s["id"]: s for s in b.get("stages", [])}
    for sid in sb:
        if sid not in sa:
            out.append(f"stage '{sid}' was added")
    for sid in sa:
        if sid not in sb:
            out.append(f"stage '{sid}' was removed")
    for sid in sa:
        if sid in sb and sa[sid] != sb[sid]:
            for key in sorted(set(sa[sid]) | set(sb[sid])):
                va, vb = sa[sid].get(key), sb[sid].get(key)
                if va == vb:
                    continue
                if isinstance(va, dict) and isinstance(vb, dict):
                    for k in sorted(set(va) | set(vb)):
                        if va.get(k) != vb.get(k):
                            out.append(f"stage '{sid}': {key}.{k} changed from {_short(va.get(k))} to {_short(vb.get(k))}")
                else:
                    out.append(f"stage '{sid}': {key} changed from {_short(va)} to {_short(vb)}")
    for key in sorted((set(a) | set(b)) - {"stages"}):
        if a.get(key) != b.get(key):
            out.append(f"{key} changed from {_short(a.get(key))} to {_short(b.get(key))}")
    return out


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False) if value is not None else "(none)"
    return text if len(text) <= width else text[: width - 1] + "…"


def _set_path(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        nxt = target.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            target[p] = nxt
        target = nxt
    target[parts[-1]] = value


def apply_stage_changes(pipeline: Pipeline, changes: dict[str, dict[str, Any]]) -> Pipeline:
    """A copy of ``pipeline`` with ``{stage_id: {"config.key" or "key": value}}`` applied.

    A bare key means ``config.key``; ``model``, ``provider``, ``enabled``,
    ``timeout_ms`` and the other stage fields are set when written as such.
    """
    from flowmason.kernel.model import Stage, parse_pipeline

    data = pipeline.model_dump(mode="json", exclude_none=True)
    by_id = {s["id"]: s for s in data["stages"]}
    fields = set(Stage.model_fields) - {"id"}
    for sid, values in changes.items():
        stage = by_id.get(sid)
        if stage is None:
            import difflib

            close = difflib.get_close_matches(sid, by_id, n=1)
            raise NotFoundError(f"the pipeline has no stage '{sid}'", pipeline=pipeline.key, stage=sid,
                                hint=f"did you mean '{close[0]}'?" if close else "stage ids are listed by `fm debug state`")
        for key, value in values.items():
            top = key.split(".", 1)[0]
            path = key if top in fields else f"config.{key}"
            _set_path(stage, path, value)
    return parse_pipeline(data, source=pipeline.key)


def _downstream(pipeline: Pipeline, roots: set[str]) -> set[str]:
    children: dict[str, list[str]] = {}
    for s in pipeline.stages:
        for d in s.depends_on:
            children.setdefault(d, []).append(s.id)
    out, todo = set(roots), list(roots)
    for _ in range(len(pipeline.stages) + len(roots) + 1):  # bounded walk of a DAG
        if not todo:
            break
        nxt = []
        for sid in todo:
            for c in children.get(sid, ()):
                if c not in out:
                    out.add(c)
                    nxt.append(c)
        todo = nxt
    return out


def _invalidated(plan: Any, roots: set[str]) -> set[str]:
    """The stages whose inputs a what-if change can reach: downstream by ``depends_on``, every stage
    inside or gated by such a stage, and what waits for a control-flow stage around one (its output
    holds the changed result). The control-flow stages themselves always run again (``_keeps``)."""
    governed: dict[str, list[str]] = {}
    for sid, sp in plan.stages.items():
        for ruler in {sp.owner, sp.gate} - {None}:
            governed.setdefault(ruler, []).append(sid)
    out: set[str] = set()
    todo = set(roots)
    for _ in range(len(plan.stages) + 1):  # bounded: each round adds a stage or ends
        if not todo:
            break
        out |= todo
        nxt = _downstream(plan.pipeline, todo)
        for sid in todo:
            nxt.update(governed.get(sid, ()))
            owner = plan.stages[sid].owner if sid in plan.stages else None
            for _ in range(len(plan.stages)):  # up the chain of enclosing loops and try blocks
                if owner is None:
                    break
                nxt |= _downstream(plan.pipeline, {owner}) - {owner}
                owner = plan.stages[owner].owner
        todo = nxt - out
    return out


def _keeps(plan: Any, r: StageResult, invalid: set[str]) -> bool:
    """Whether a settled result is kept by a replay: not touched by a change, and reusable as it is
    (``executor.reusable``: control-flow stages run again, so their skips and breaks happen again)."""
    sp = plan.stages.get(r.stage_id)
    if sp is None or r.stage_id in invalid or sp.component.kind == "control_flow":
        return False
    if r.status is StageStatus.SKIPPED:
        return r.iteration is None  # a skipped main-graph stage stays skipped; in a body the skip happens again
    return reusable(sp, r)


def _reads_inputs(pipeline: Pipeline, keys: set[str]) -> set[str]:
    """Stages whose settings mention one of the input keys (``input.key`` / ``input['key']``)."""
    import re

    if not keys:
        return set()
    pattern = re.compile(r"\binput(?:\.|\[['\"])(" + "|".join(re.escape(k) for k in keys) + r")\b")
    out = set()
    for s in pipeline.stages:
        text = json.dumps(s.settings(), default=str)
        if "{{" in text and pattern.search(text):
            out.add(s.id)
    return out


@dataclass
class ReplayPlan:
    """Everything decided before the replay writes anything."""

    source: Timeline
    seq: int
    pipeline: Pipeline
    inputs: dict[str, Any]
    resume: dict[str, StageResult]
    rerun: list[str]
    changed_inputs: list[str] = field(default_factory=list)
    changed_stages: list[str] = field(default_factory=list)

    def origin(self) -> dict[str, Any]:
        return {"run_id": self.source.run.id, "seq": self.seq, "resumed": sorted(self.resume),
                "changed_inputs": self.changed_inputs, "changed_stages": self.changed_stages}


def plan_replay(repo: Any, run_ref: str, seq: int, *, inputs: dict[str, Any] | None = None,
                stage_changes: dict[str, dict[str, Any]] | None = None, current: Pipeline | None = None) -> ReplayPlan:
    """Check and plan a replay (or what-if) without touching the store."""
    tl = load_timeline(repo, run_ref)
    tl.snapshot(seq)
    if tl.pipeline is None:
        raise NotFoundError(f"the pipeline definition of run '{tl.run.id}' is no longer stored", field="run_id",
                            hint="it expires with the run's snapshots; rerun the pipeline instead")
    recorded = tl.pipeline
    if current is not None and canonical_pipeline(current)[1] != tl.head.get("pipeline_hash"):
        changes = pipeline_changes(recorded, current)
        raise PipelineChangedError(
            f"the pipeline has changed since run '{tl.run.id}'", changes or ["its definition differs"],
            pipeline=current.key, hint="replay without --pipeline to use the definition recorded with the run, "
            "or use `fm debug what-if` with --set to change a stage on purpose",
        )
    pipeline = apply_stage_changes(recorded, stage_changes) if stage_changes else recorded
    from flowmason.kernel.plan import compile_plan
    from flowmason.kernel.plugins import get_registry

    compiled = compile_plan(pipeline, get_registry().components)  # raises the validation errors before any write
    new_inputs = copy.deepcopy(tl.run.inputs)
    changed_inputs = sorted(k for k, v in (inputs or {}).items() if tl.run.inputs.get(k, object()) != v)
    new_inputs.update(inputs or {})
    invalid = _invalidated(compiled, set(stage_changes or {}) | _reads_inputs(pipeline, set(changed_inputs)))
    settled = tl.finished_by(seq)
    resume = {key: r for key, r in tl.results.items() if key in settled and _keeps(compiled, r, invalid)}
    rerun = [s.id for s in pipeline.stages if s.id not in resume]
    return ReplayPlan(tl, seq, pipeline, new_inputs, resume, rerun, changed_inputs, sorted(stage_changes or {}))


def copy_resumed(repo: Any, plan: ReplayPlan, run: Run) -> None:
    """Write the kept stage results into the new run: it is complete on its own, and a
    worker that picks it up from the queue resumes from them (``RunRepository.checkpoint``)."""
    run.metadata["replay_of"] = plan.origin()
    for r in plan.resume.values():
        repo.stage_recorded(run, r)


async def run_replay(repo: Any, plan: ReplayPlan, *, loader: Any = None) -> Run:
    """Run a planned replay in this process; returns the new run (failed runs are recorded and returned too)."""
    from flowmason.kernel.runner import Runner

    src = plan.source.run
    run = Run(pipeline_id=src.pipeline_id, pipeline_name=src.pipeline_name, pipeline_version=src.pipeline_version,
              inputs=plan.inputs)
    copy_resumed(repo, plan, run)
    try:
        return await Runner(recorder=repo).run(plan.pipeline, plan.inputs, run=run, resume=plan.resume,
                                               loader=loader)
    except FlowMasonError:
        return run  # recorded as failed; the caller shows its status and error


def replay(repo: Any, run_ref: str, seq: int, *, inputs: dict[str, Any] | None = None,
           stage_changes: dict[str, dict[str, Any]] | None = None, current: Pipeline | None = None,
           loader: Any = None) -> tuple[ReplayPlan, Run]:
    """Plan and run a replay from snapshot ``seq`` (synchronous; for the CLI and tests)."""
    plan = plan_replay(repo, run_ref, seq, inputs=inputs, stage_changes=stage_changes, current=current)
    return plan, asyncio.run(run_replay(repo, plan, loader=loader))


def compare_runs(repo: Any, run_a: str, run_b: str) -> dict[str, Any]:
    """Two runs side by side: one row per stage (and foreach iteration) with both sides."""
    from .history import result_key

    ra, rb = repo.find_run(run_a), repo.find_run(run_b)
    sa = {result_key(r): r for r in repo.stage_results(ra.id)}
    sb = {result_key(r): r for r in repo.stage_results(rb.id)}
    order = list(sa) + [k for k in sb if k not in sa]
    rows = []
    for key in order:
        a, b = sa.get(key), sb.get(key)
        rows.append({
            "stage": key,
            "a": _side(a), "b": _side(b),
            "same_output": a is not None and b is not None and a.output == b.output,
            "same_input": a is not None and b is not None and a.input == b.input,
        })
    return {
        "a": {"id": ra.id, "status": ra.status.value, "duration_ms": ra.duration_ms, "inputs": ra.inputs, "output": ra.output},
        "b": {"id": rb.id, "status": rb.status.value, "duration_ms": rb.duration_ms, "inputs": rb.inputs, "output": rb.output},
        "same_output": ra.output == rb.output,
        "stages": rows,
    }


def _side(r: StageResult | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"status": r.status.value, "duration_ms": r.duration_ms, "input": r.input, "output": r.output,
            "error": r.error, "usage": r.usage}
