"""OpenTelemetry spans for runs and stages (imported only when tracing is on and the SDK is installed).

One span per run (``flowmason.run``), one child span per stage result
(``flowmason.stage``, foreach iterations included), created when the stage
settles with the stage's own start and end times, so the executor's hot
path gets one hook call per stage and no span bookkeeping while it runs.
A sub-pipeline's run span is a child of its parent run's span.

Attributes: ``flowmason.*`` for ids, status, attempts and retries, and the
OpenTelemetry GenAI conventions for the model (``gen_ai.request.model``,
``gen_ai.system``) and tokens (``gen_ai.usage.input_tokens`` /
``output_tokens``); cost as ``flowmason.usage.cost``. Failed stages and
runs get status ERROR with the error message.

Metrics, from the same hooks: ``flowmason.stage.duration`` (histogram,
ms), ``flowmason.stages`` (counter) and ``flowmason.runs`` (counter) by
status, ``flowmason.tokens`` by direction and ``flowmason.cost``, each
labelled with the pipeline and component type.

``Tracing(tracer_provider=None, meter_provider=None)``: without providers
they are built from the environment — OTLP over HTTP
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or the per-signal variables, the standard
ones, read by the exporters themselves) when
``opentelemetry-exporter-otlp-proto-http`` is installed, else the console
exporter when ``FM_TRACING=console``. On Lambda (``AWS_LAMBDA_FUNCTION_NAME``)
the providers are flushed as each top-level run ends, since a frozen
invocation never reaches the exit handler.
"""
from __future__ import annotations

import os
import threading
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from flowmason.kernel.plugins import hookimpl

_TOKEN_KEYS = {
    "input_tokens": "gen_ai.usage.input_tokens", "prompt_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens", "completion_tokens": "gen_ai.usage.output_tokens",
}
_COST_KEYS = ("cost", "cost_usd", "total_cost")


def _ns(ts: float | None) -> int | None:
    return int(ts * 1e9) if ts else None


def _resource() -> Any:
    from opentelemetry.sdk.resources import Resource

    return Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "flowmason")})


def _console() -> bool:
    """``FM_TRACING=console``: spans and metrics go to stdout instead of an OTLP endpoint."""
    from flowmason.kernel.settings import get_settings

    return (get_settings().tracing or "").strip().lower() == "console"


def meter_provider_from_env() -> Any:
    """A MeterProvider exporting (every ``OTEL_METRIC_EXPORT_INTERVAL`` ms) where the OTEL_* variables say."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

    if _console():
        exporter: Any = ConsoleMetricExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        except ImportError:
            return MeterProvider(resource=_resource())
        exporter = OTLPMetricExporter()
    return MeterProvider(resource=_resource(), metric_readers=[PeriodicExportingMetricReader(exporter)])


def provider_from_env() -> Any:
    """A TracerProvider exporting where the standard OTEL_* variables say."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(resource=_resource())
    if _console():
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        return provider
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        import logging

        logging.getLogger("flowmason.tracing").warning(
            "tracing: opentelemetry-exporter-otlp-proto-http is not installed; spans are not exported "
            "(pip install 'flowmason[otel]')")
        return provider
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


class Tracing:
    """A plugin object: spans for every run and stage the executor reports."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.provider = tracer_provider if tracer_provider is not None else provider_from_env()
        self.meter_provider = meter_provider if meter_provider is not None else (
            meter_provider_from_env() if tracer_provider is None else None)
        self.tracer = self.provider.get_tracer("flowmason")
        self._runs: dict[str, Any] = {}
        self._lock = threading.Lock()
        # a Lambda invocation may be frozen right after the run: export before returning, not at exit
        self.flush_each_run = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
        self._metrics = _Metrics(self.meter_provider.get_meter("flowmason")) if self.meter_provider is not None else None

    # -- hooks --
    @hookimpl
    def fm_run_started(self, run, pipeline):
        parent = None
        parent_id = run.metadata.get("parent_run_id")
        if parent_id:
            parent_span = self._runs.get(parent_id)
            if parent_span is not None:
                parent = trace.set_span_in_context(parent_span)
        attrs = {"flowmason.run.id": run.id, "flowmason.pipeline.id": run.pipeline_id,
                 "flowmason.pipeline.version": run.pipeline_version or ""}
        if parent_id:
            attrs["flowmason.run.parent_id"] = parent_id
            attrs["flowmason.run.parent_stage"] = str(run.metadata.get("parent_stage_id") or "")
        replay = run.metadata.get("replay_of")
        if isinstance(replay, dict) and replay.get("run_id"):
            attrs["flowmason.run.replay_of"] = replay["run_id"]
        span = self.tracer.start_span(f"run {run.pipeline_id}", context=parent, kind=SpanKind.INTERNAL,
                                      start_time=_ns(run.started_at), attributes=attrs)
        with self._lock:
            self._runs[run.id] = span

    @hookimpl
    def fm_stage_finished(self, run, stage, result):
        self._stage(run, stage, result)

    @hookimpl
    def fm_stage_failed(self, run, stage, result):
        self._stage(run, stage, result)

    @hookimpl
    def fm_stage_skipped(self, run, stage, result):
        self._stage(run, stage, result)

    @hookimpl
    def fm_run_finished(self, run, pipeline):
        with self._lock:
            span = self._runs.pop(run.id, None)
        if span is None:
            return
        status = run.status.value
        span.set_attribute("flowmason.run.status", status)
        if run.duration_ms is not None:
            span.set_attribute("flowmason.run.duration_ms", float(run.duration_ms))
        self._usage(span, run.usage)
        if self._metrics is not None:
            self._metrics.runs.add(1, {"flowmason.pipeline.id": run.pipeline_id, "flowmason.run.status": status})
        if status == "completed":
            span.set_status(Status(StatusCode.OK))
        else:
            span.set_status(Status(StatusCode.ERROR, (run.error or {}).get("message") or status))
        span.end(end_time=_ns(run.finished_at))
        if self.flush_each_run and not run.metadata.get("parent_run_id"):
            self.flush()

    # -- helpers --
    def _stage(self, run: Any, stage: Any, result: Any) -> None:
        parent_span = self._runs.get(run.id)
        ctx = trace.set_span_in_context(parent_span) if parent_span is not None else None
        status = result.status.value
        attempts = int(result.attempts or 0)
        attrs: dict[str, Any] = {
            "flowmason.run.id": run.id, "flowmason.stage.id": result.stage_id,
            "flowmason.stage.component_type": result.component_type, "flowmason.stage.status": status,
            "flowmason.stage.attempts": attempts, "flowmason.stage.retries": max(attempts - 1, 0),
        }
        if result.iteration is not None:
            attrs["flowmason.stage.iteration"] = str(result.iteration)
        model = stage.model or (stage.llm_settings or {}).get("model") or (result.usage or {}).get("model")
        if not model and isinstance(result.input, dict) and isinstance(result.input.get("model"), str):
            model = result.input["model"]
        if model:
            attrs["gen_ai.request.model"] = str(model)
        if stage.provider:
            attrs["gen_ai.system"] = stage.provider
        if self._metrics is not None:
            self._metrics.stage(run, result, status)
        name = f"stage {result.stage_id}" + (f"[{result.iteration}]" if result.iteration is not None else "")
        span = self.tracer.start_span(name, context=ctx, start_time=_ns(result.started_at), attributes=attrs)
        self._usage(span, result.usage)
        if status == "failed":
            message = (result.error or {}).get("message") or "failed"
            span.set_status(Status(StatusCode.ERROR, message))
            span.add_event("exception", {"exception.message": message,
                                         "exception.type": str((result.error or {}).get("type") or (result.error or {}).get("code") or "error")})
        elif status == "skipped":
            span.set_attribute("flowmason.stage.skip_reason", (result.error or {}).get("message") or "")
        else:
            span.set_status(Status(StatusCode.OK))
        span.end(end_time=_ns(result.finished_at))

    @staticmethod
    def _usage(span: Any, usage: dict[str, Any] | None) -> None:
        for key, value in (usage or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if key in _TOKEN_KEYS:
                span.set_attribute(_TOKEN_KEYS[key], int(value))
            elif key in _COST_KEYS:
                span.set_attribute("flowmason.usage.cost", float(value))
            else:
                span.set_attribute(f"flowmason.usage.{key}", value)

    def flush(self) -> None:
        for provider in (self.provider, self.meter_provider):
            fn = getattr(provider, "force_flush", None)
            if callable(fn):
                fn()

    def shutdown(self) -> None:
        """Flush and stop the exporters (end of process, tests)."""
        for provider in (self.provider, self.meter_provider):
            fn = getattr(provider, "shutdown", None)
            if callable(fn):
                fn()


class _Metrics:
    """The instruments, created once."""

    def __init__(self, meter: Any) -> None:
        self.duration = meter.create_histogram("flowmason.stage.duration", unit="ms", description="Stage duration")
        self.stages = meter.create_counter("flowmason.stages", description="Stages settled, by status")
        self.runs = meter.create_counter("flowmason.runs", description="Runs ended, by status")
        self.tokens = meter.create_counter("flowmason.tokens", description="Model tokens, by direction")
        self.cost = meter.create_counter("flowmason.cost", description="Model cost reported by stages")

    def stage(self, run: Any, result: Any, status: str) -> None:
        labels = {"flowmason.pipeline.id": run.pipeline_id, "flowmason.stage.component_type": result.component_type,
                  "flowmason.stage.status": status}
        self.stages.add(1, labels)
        if result.duration_ms is not None and status != "skipped":
            self.duration.record(float(result.duration_ms), labels)
        for key, value in (result.usage or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if key in _TOKEN_KEYS:
                direction = "input" if _TOKEN_KEYS[key].endswith("input_tokens") else "output"
                self.tokens.add(int(value), {**labels, "gen_ai.token.type": direction})
            elif key in _COST_KEYS:
                self.cost.add(float(value), labels)
