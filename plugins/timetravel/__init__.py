"""Time travel: snapshots at every stage boundary, timelines, state, diffs, replay, what-if.

The event hooks below feed ``recorder.SnapshotRecorder`` (one per
process, ``RECORDER``); ``history`` reads snapshots back; ``replay`` reruns
from a snapshot; ``cli`` adds ``fm debug ...``; ``routes`` adds the HTTP API.
Only runs that are recorded in a store get snapshots, written beside them
in the same store and tenant namespace. There is deliberately no
``fm_stage_started`` hook: a stage's start boundary is read back from its
stored result (see ``history``), which halves the per-stage hook cost.

Public read API (``__all__``), for the plugins that show recorded runs
(``animation``, ``promptdiff``): ``load_timeline(repo, run_ref)`` -> a
``Timeline`` (``.state(seq)``, ``.pipeline``, ``.stage_ids``, ...),
``parse_ref("RUN@SEQ")``, ``recorded_pipeline(repo, run_id)``. The reader
stays here, beside the recorder that writes the snapshot log, rather than
in ``kernel/runs.py``: the log and the stored pipeline definitions are
this plugin's own layout, and a process without time travel has none to
read. A dependent plugin checks that ``timetravel`` is loaded
(``get_plugin_manager().has_plugin``) before importing these, so leaving
it out of ``FM_PLUGINS`` really leaves it out.
"""
from __future__ import annotations

from typing import Any

from flowmason.kernel.plugins import hookimpl

from .recorder import FAILED, FINISHED, SKIPPED, SnapshotRecorder

__all__ = ["Timeline", "load_timeline", "parse_ref", "recorded_pipeline"]
# optional plugins: used when loaded, never imported otherwise (`fm debug compare` word diff;
# the replay route queues its run on the durable engine)
USES = ("promptdiff", "durable")


def __getattr__(name: str) -> Any:
    # the read side loads on first use: recording runs never needs it
    if name in __all__:
        from . import history

        return getattr(history, name)
    raise AttributeError(name)

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
