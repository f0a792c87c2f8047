"""Tracing: OpenTelemetry spans per run and stage, exportable to any OTLP collector.

Off unless asked for, and free when off: this module imports nothing from
OpenTelemetry and registers no event hook (so the executor skips them)
unless ``FM_TRACING`` is ``1``/``otlp``/``console`` or an
``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`` is set, *and* the SDK is
installed (``pip install 'flowmason[otel]'``). Then one ``spans.Tracing``
backs this module's event hooks; ``shutdown()`` flushes it.

Embedding with your own TracerProvider:
``register_plugin(flowmason.plugins.tracing.spans.Tracing(provider))``.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from flowmason.kernel.plugins import hookimpl

log = logging.getLogger("flowmason.tracing")

_ACTIVE: Any = None


def requested() -> bool:
    """Did the environment ask for tracing?"""
    from flowmason.kernel.settings import get_settings

    flag = (get_settings().tracing or "").strip().lower()
    if flag in ("0", "false", "off", "no"):
        return False
    return bool(flag) or bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def sdk_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("opentelemetry.sdk.trace") is not None
    except (ImportError, ValueError):
        return False


def active() -> Any:
    """The Tracing plugin object registered from the environment, or None."""
    return _ACTIVE


def shutdown() -> None:
    if _ACTIVE is not None:
        _ACTIVE.shutdown()


def _get() -> Any:
    global _ACTIVE
    if _ACTIVE is None:
        import atexit

        from .spans import Tracing

        _ACTIVE = Tracing()
        atexit.register(shutdown)  # flush the batch exporter before the process ends
    return _ACTIVE


# Decided once, when the plugin manager imports this module: with tracing off
# there are no event hooks here at all, so the executor does not call any.
ENABLED = requested() and sdk_available()
if requested() and not ENABLED:
    log.warning("tracing: FM_TRACING/OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-sdk is not installed "
                "(pip install 'flowmason[otel]'); no spans")

if ENABLED:
    @hookimpl
    def fm_run_started(run, pipeline):
        _get().fm_run_started(run, pipeline)

    @hookimpl
    def fm_stage_finished(run, stage, result):
        _get().fm_stage_finished(run, stage, result)

    @hookimpl
    def fm_stage_failed(run, stage, result):
        _get().fm_stage_failed(run, stage, result)

    @hookimpl
    def fm_stage_skipped(run, stage, result):
        _get().fm_stage_skipped(run, stage, result)

    @hookimpl
    def fm_run_finished(run, pipeline):
        _get().fm_run_finished(run, pipeline)
