"""HTTP routes for time travel, on the ``plugins/http_api`` contract.

    GET  /runs/{run_id}/snapshots                       the timeline
    GET  /runs/{run_id}/snapshots/{seq}                 the state at a snapshot
    GET  /runs/{run_id}/snapshots/{seq}/diff/{other}    diff with SEQ of the same run or RUN_ID@SEQ
    POST /runs/{run_id}/snapshots/{seq}/replay          replay / what-if (body: inputs, stages, pipeline)
    GET  /runs/{run_id}/compare/{other_id}              two runs side by side

Reads use the caller's tenant (``services.runs(identity)``). A replay is
planned and checked first (nothing is written on bad input), then created
as a pending run with its kept stage results and queued like any run
(``flowmason.plugins.durable``): in-process under ``fm serve``, on SQS on Lambda.
Errors: 404 unknown run or snapshot, 410 snapshots removed by retention,
409 pipeline changed since the run (the message lists the changes).
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ReplayIn(BaseModel):
    inputs: dict[str, Any] | None = Field(default=None, description="Changed input values (what-if).")
    stages: dict[str, dict[str, Any]] | None = Field(
        default=None, description="Changed stage fields: {stage_id: {'prompt': ..., 'config.x': ..., 'model': ...}}.")
    pipeline: dict[str, Any] | None = Field(
        default=None, description="The current pipeline definition; refused (409) if it differs from the run's.")


def _repo(request: Any) -> Any:
    return request.app.state.fm.runs(request.state.identity)


def timeline(request: Any) -> Any:
    from .history import load_timeline

    return load_timeline(_repo(request), request.path_params["run_id"]).describe()


def state(request: Any) -> Any:
    from .history import load_timeline

    return load_timeline(_repo(request), request.path_params["run_id"]).state(request.path_params["seq"])


def diff(request: Any) -> Any:
    from .history import diff_states, load_timeline, parse_ref

    repo = _repo(request)
    run_id = request.path_params["run_id"]
    tl_a = load_timeline(repo, run_id)
    run_b, seq_b = parse_ref(request.path_params["other"], default_run=tl_a.run.id)
    tl_b = tl_a if run_b in (run_id, tl_a.run.id) else load_timeline(repo, run_b)
    return diff_states(tl_a.state(request.path_params["seq"]), tl_b.state(seq_b))


def replay(request: Any) -> Any:
    from flowmason.plugins.durable import create_run, run_message
    from flowmason.kernel.model import parse_pipeline

    from .replay import copy_resumed, plan_replay

    body: ReplayIn = request.state.body
    svc = request.app.state.fm
    identity = request.state.identity
    repo = svc.runs(identity)
    current = parse_pipeline(body.pipeline) if body.pipeline is not None else None
    plan = plan_replay(repo, request.path_params["run_id"], request.path_params["seq"], inputs=body.inputs,
                       stage_changes=body.stages, current=current)
    org = svc.org(identity)
    definition = plan.pipeline.model_dump(mode="json", exclude_none=True)
    run = create_run(svc.store, org, plan.pipeline, definition, plan.inputs,
                     created_by=(identity or {}).get("subject"))
    copy_resumed(repo, plan, run)
    repo.run_started(run)  # the pending run's record now says what it replays
    svc.queue.send(run_message(org, run.id))
    return 202, {"run": run.model_dump(mode="json"), "replay_of": plan.origin(), "rerun": plan.rerun}


def compare(request: Any) -> Any:
    from .replay import compare_runs

    return compare_runs(_repo(request), request.path_params["run_id"], request.path_params["other_id"])


def register_routes(register: Any) -> None:
    tags = ["time travel"]
    register("GET", "/runs/{run_id}/snapshots", timeline, name="run_snapshots", auth="read",
             summary="A run's snapshots, one per stage boundary", tags=tags)
    register("GET", "/runs/{run_id}/snapshots/{seq:int}", state, name="run_snapshot_state", auth="read",
             summary="The complete state of a run at one snapshot", tags=tags)
    register("GET", "/runs/{run_id}/snapshots/{seq:int}/diff/{other}", diff, name="run_snapshot_diff", auth="read",
             summary="What changed between two snapshots (other: SEQ or RUN_ID@SEQ)", tags=tags)
    register("POST", "/runs/{run_id}/snapshots/{seq:int}/replay", replay, name="run_snapshot_replay", auth="run",
             summary="Replay a run from a snapshot, optionally with changed inputs or stages (what-if)",
             request_model=ReplayIn, status_code=202, tags=tags)
    register("GET", "/runs/{run_id}/compare/{other_id}", compare, name="run_compare", auth="read",
             summary="Two runs side by side, stage by stage", tags=tags)
