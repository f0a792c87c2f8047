"""Time travel: snapshots at every stage boundary, timelines, state, diffs, replay, what-if.

The event hooks below feed ``recorder.SnapshotRecorder`` (one per
process, ``RECORDER``); ``history`` reads snapshots back; ``replay`` reruns
from a snapshot; ``cli`` adds ``fm debug ...``; ``routes`` adds the HTTP API.
Only runs that are recorded in a store get snapshots, written beside them
in the same store and tenant namespace. There is deliberately no
``fm_stage_started`` hook: a stage's start boundary is read back from its
stored result (see ``history``), which halves the per-stage hook cost.
"""
from __future__ import annotations

from flowmason.kernel.plugins import hookimpl

from .recorder import FAILED, FINISHED, SKIPPED, SnapshotRecorder

RECORDER = SnapshotRecorder()
_live_get = RECORDER._live.get


@hookimpl
def fm_run_started(run, pipeline):
    RECORDER.run_started(run, pipeline)


@hookimpl
def fm_stage_finished(run, stage, result):
    rl = _live_get(run.id)  # inlined: this runs once per stage
    if rl is not None:
        rl.add(FINISHED, result.stage_id, result.iteration)


@hookimpl
def fm_stage_failed(run, stage, result):
    rl = _live_get(run.id)  # inlined: this runs once per stage
    if rl is not None:
        rl.add(FAILED, result.stage_id, result.iteration)


@hookimpl
def fm_stage_skipped(run, stage, result):
    rl = _live_get(run.id)  # inlined: this runs once per stage
    if rl is not None:
        rl.add(SKIPPED, result.stage_id, result.iteration)


@hookimpl
def fm_run_finished(run, pipeline):
    RECORDER.run_finished(run)


@hookimpl
def fm_register_commands(app):
    from .cli import register_commands

    register_commands(app)


@hookimpl
def fm_register_routes(register):
    from .routes import register_routes

    register_routes(register)
