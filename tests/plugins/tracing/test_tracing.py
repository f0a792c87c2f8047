"""OpenTelemetry spans per run and stage (in-memory exporter), real OTLP/HTTP export, and nothing when off."""
from __future__ import annotations

import asyncio
import http.server
import os
import subprocess
import sys
import threading

import pytest

from flowmason.kernel import plugins
from flowmason.kernel.components import operator
from flowmason.kernel.errors import FlowMasonError
from flowmason.kernel.executor import run_pipeline
from flowmason.kernel.plugins import hookimpl

from tests.plugins.timetravel.helpers import Components, pipeline, stage

pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402

from flowmason.plugins.tracing.spans import Tracing  # noqa: E402


class Sub:
    """A component that runs an inline child pipeline (a sub-pipeline run)."""

    @hookimpl
    def fm_register_components(self, register):
        @operator("tt-sub")
        async def sub(ctx):
            child = {"id": "child", "stages": [{"id": "inner", "component_type": "tt-text", "config": {"text": "hi"}}]}
            return await ctx.run_pipeline(child, {})

        register(sub)


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider)
    plugins.reset(None, extra=[Components(), Sub(), tracing])
    yield exporter
    plugins.reset()
    provider.shutdown()


def traced_pipeline():
    return pipeline(
        {**stage("draft", "tt-llm", prompt="three little words"), "model": "claude-test", "provider": "anthropic"},
        {**stage("flaky", "tt-fail", ("draft",), fail_times=2),
         "retry_config": {"max_retries": 3, "initial_delay_ms": 1}},
        {**stage("broken", "tt-fail", ("draft",), message="bad gateway"), "on_error": "skip"},
        stage("after", deps=("broken",)),
        stage("nested", "tt-sub", ("draft",)),
        pid="traced",
    )


def by_name(exporter):
    return {s.name: s for s in exporter.get_finished_spans()}


def test_spans_per_run_and_stage_with_model_tokens_cost_retries(spans):
    run = asyncio.run(run_pipeline(traced_pipeline(), {}))
    got = by_name(spans)
    root = got["run traced"]
    assert root.parent is None
    assert root.attributes["flowmason.run.id"] == run.id
    assert root.attributes["flowmason.run.status"] == "completed"
    assert root.status.status_code == StatusCode.OK
    assert root.attributes["gen_ai.usage.input_tokens"] == 3
    draft = got["stage draft"]
    assert draft.parent.span_id == root.context.span_id
    assert draft.context.trace_id == root.context.trace_id
    assert draft.attributes["gen_ai.request.model"] == "claude-test"
    assert draft.attributes["gen_ai.system"] == "anthropic"
    assert draft.attributes["gen_ai.usage.input_tokens"] == 3
    assert draft.attributes["gen_ai.usage.output_tokens"] == 5
    assert draft.attributes["flowmason.usage.cost"] == pytest.approx(0.003)
    assert draft.start_time < draft.end_time
    assert root.start_time <= draft.start_time and draft.end_time <= root.end_time
    flaky = got["stage flaky"]
    assert flaky.attributes["flowmason.stage.attempts"] == 3
    assert flaky.attributes["flowmason.stage.retries"] == 2
    broken = got["stage broken"]
    assert broken.status.status_code == StatusCode.ERROR
    assert "bad gateway" in broken.status.description
    assert broken.events[0].name == "exception"
    assert got["stage after"].attributes["flowmason.stage.status"] == "skipped"
    # the sub-pipeline's run is a child of the parent run's span
    child = got["run child"]
    assert child.parent.span_id == root.context.span_id
    assert child.attributes["flowmason.run.parent_stage"] == "nested"
    assert got["stage inner"].parent.span_id == child.context.span_id


def test_failed_run_span_is_an_error(spans):
    p = pipeline(stage("a"), stage("boom", "tt-fail", ("a",), message="kaput"), pid="failing")
    with pytest.raises(FlowMasonError, match="kaput"):
        asyncio.run(run_pipeline(p, {}))
    root = by_name(spans)["run failing"]
    assert root.status.status_code == StatusCode.ERROR
    assert "kaput" in root.status.description
    assert root.attributes["flowmason.run.status"] == "failed"


def test_metrics_per_stage_and_run():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    tracing = Tracing(TracerProvider(), MeterProvider(metric_readers=[reader]))
    plugins.reset(None, extra=[Components(), Sub(), tracing])
    try:
        asyncio.run(run_pipeline(traced_pipeline(), {}))
        asyncio.run(run_pipeline(traced_pipeline(), {}))
    finally:
        plugins.reset()
    points: dict[str, list] = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                points[m.name] = list(m.data.data_points)
    stages = {(p.attributes["flowmason.stage.component_type"], p.attributes["flowmason.stage.status"]): p.value
              for p in points["flowmason.stages"] if p.attributes["flowmason.pipeline.id"] == "traced"}
    assert stages[("tt-llm", "completed")] == 2
    assert stages[("tt-fail", "failed")] == 2 and stages[("tt-fail", "completed")] == 2
    assert stages[("tt-text", "skipped")] == 2
    tokens = {p.attributes["gen_ai.token.type"]: p.value for p in points["flowmason.tokens"]}
    assert tokens == {"input": 6, "output": 10}
    assert sum(p.value for p in points["flowmason.cost"]) == pytest.approx(0.006)
    runs = {p.attributes["flowmason.pipeline.id"]: p.value for p in points["flowmason.runs"]}
    assert runs == {"traced": 2, "child": 2}
    durations = [p for p in points["flowmason.stage.duration"] if p.attributes["flowmason.stage.component_type"] == "tt-llm"]
    assert durations[0].count == 2


class Collector(http.server.BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Collector.bodies.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_otlp_export_to_a_real_collector(monkeypatch):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Collector.bodies = []
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "fm-test")
        tracing = Tracing()  # provider and OTLP exporter from the standard environment variables
        plugins.reset(None, extra=[Components(), tracing])
        asyncio.run(run_pipeline(pipeline(stage("a"), stage("b", deps=("a",)), pid="otlp"), {}))
        tracing.shutdown()  # flushes the batch processor
    finally:
        plugins.reset()
        server.shutdown()
    paths = {path for path, _ in Collector.bodies}
    assert paths == {"/v1/traces", "/v1/metrics"}
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    metric_names = {m.name for path, body in Collector.bodies if path == "/v1/metrics"
                    for rm in ExportMetricsServiceRequest.FromString(body).resource_metrics
                    for sm in rm.scope_metrics for m in sm.metrics}
    assert {"flowmason.stages", "flowmason.runs", "flowmason.stage.duration"} <= metric_names
    names, services = set(), set()
    for path, body in Collector.bodies:
        if path != "/v1/traces":
            continue
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            services.update(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")
            for ss in rs.scope_spans:
                names.update(s.name for s in ss.spans)
    assert names == {"run otlp", "stage a", "stage b"}
    assert services == {"fm-test"}


SCRIPT = r"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
if sys.argv[1] == "missing":
    sys.meta_path.insert(0, Block())
import asyncio
from flowmason.kernel import plugins
from flowmason.kernel.executor import _event_hooks
import flowmason.plugins.tracing as t
pm = plugins.reset()
hooks = sorted(h.name for h in pm.get_hookcallers(t) or [])
print("enabled", t.ENABLED)
print("hooks", ",".join(h for h in hooks if h.startswith("fm_run") or h.startswith("fm_stage")))
print("imported", any(m.startswith("opentelemetry") for m in sys.modules))
"""


@pytest.mark.parametrize("mode, env, expect_enabled", [
    ("installed", {}, False),  # installed but not asked for: nothing imported, no hooks
    ("missing", {"FM_TRACING": "1"}, False),  # asked for but not installed: nothing imported, no hooks, no crash
    ("installed", {"FM_TRACING": "1"}, True),
])
def test_nothing_imported_unless_on_and_installed(mode, env, expect_enabled):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FM_TRACING"))}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=full, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) if " " in line else (line, "") for line in out.stdout.splitlines())
    assert lines["enabled"] == str(expect_enabled)
    if expect_enabled:
        assert lines["hooks"].split(",") == sorted(["fm_run_started", "fm_run_finished", "fm_stage_finished",
                                                    "fm_stage_failed", "fm_stage_skipped"])
    else:
        assert lines["hooks"] == ""
        assert lines["imported"] == "False"
    if mode == "missing":
        assert "opentelemetry-sdk is not installed" in out.stderr


def test_on_lambda_spans_are_exported_when_the_run_ends(monkeypatch):
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fm-worker")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    # a batch that would wait a minute: only an explicit flush gets the spans out in time
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    plugins.reset(None, extra=[Components(), Tracing(provider)])
    try:
        asyncio.run(run_pipeline(pipeline(stage("a"), pid="lambda"), {}))
        assert {s.name for s in exporter.get_finished_spans()} == {"run lambda", "stage a"}
    finally:
        plugins.reset()
        provider.shutdown()
