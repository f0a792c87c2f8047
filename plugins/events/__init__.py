"""Run events that hosts persist, so a client follows a run live from any process.

The executor emits everything through one channel (listeners and the
``fm_stage_event`` hook). A host that runs stored runs (the durable engine
behind ``fm serve`` and the Lambda worker) installs an ``EventLog`` as a
listener of each execution; it writes the run's starts, logs, token
streams, retries and settled stages to the run's partition, numbered.
``GET /runs/{id}/events`` reads them with an ``EventCursor`` and streams
them as server-sent events whose ``id`` is that number, so a client
resumes with ``Last-Event-ID`` and misses nothing, repeats nothing.

Nothing is installed by default: ``fm run`` and the Python API pay nothing.
With this plugin removed (``FM_PLUGINS=-events``), ``EventLog.for_host``
returns None, hosts keep no events, and the stream falls back to settled
stage results.

Public API: ``EventLog``, ``EventCursor``, ``Event``, ``read_events``.
"""
from __future__ import annotations

from .log import EventLog
from .reader import Event, EventCursor, read_events

__all__ = ["Event", "EventCursor", "EventLog", "read_events"]
