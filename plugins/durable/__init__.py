"""Durable runs: leases and heartbeats, resume, continuation at a deadline, fan-out, cancellation, recovery.

The engine that the worker Lambda, ``fm serve``, ``fm runs resume`` (and
later the operator and federation) share. It keeps its bookkeeping in the
run's partition (``RunRepository.partition``), beside the run's record and
stage results::

    sk = "lease"                  who runs it (owner, host, pid), expiring; see ``leases``
    sk = "lease#{stage}#{n}"      who runs fan-out chunk n
    sk = "pipeline"               {"definition", "version", "base"}: the resolved pipeline it runs
    sk = "cancel"                 cancellation requested
    sk = "parked"                 its host stopped cleanly; resume at once
    sk = "recoveries"             how many times it was recovered after its process died
    sk = "worker_error"           the last infrastructure error (for the dead-letter handler)
    sk = "fanout#{stage}#..."     fan-out bookkeeping; see ``fanout``

Modules: ``leases`` (leases, the heartbeat thread, settings), ``jobs``
(the message handler), ``fanout`` (the foreach wrapper and chunks),
``recorder`` (the hosted run's recorder), ``recovery`` (finding and
resuming runs whose process died), ``local`` (the in-process queue and
engine of ``fm serve``), ``tracking`` (the hooks that give every recorded
run a lease and its pipeline). Import the names below from this package.
"""
from __future__ import annotations

from typing import Any

from flowmason.kernel.plugins import hookimpl

_EXPORTS = {
    "Jobs": "jobs", "Queue": "jobs", "create_run": "jobs", "request_cancel": "jobs", "run_message": "jobs",
    "fail_run": "jobs", "TERMINAL": "jobs",
    "LocalQueue": "local", "LocalEngine": "local",
    "Settings": "leases", "settings": "leases", "reset_settings": "leases", "lease_holder": "leases",
    "holder_alive": "leases",
    "scan": "recovery", "stale": "recovery",
}
_RENAMED = {"lease_holder": "holder"}

__all__ = sorted(_EXPORTS)
# hosted runs keep their live events in the events plugin's log when it is loaded
USES = ("events",)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flowmason.plugins.durable' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), _RENAMED.get(name, name))
    globals()[name] = value
    return value


@hookimpl
def fm_run_started(run, pipeline):
    from . import tracking

    tracking.run_started(run, pipeline)


@hookimpl
def fm_run_finished(run, pipeline):
    from . import tracking

    tracking.run_finished(run, pipeline)
