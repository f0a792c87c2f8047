"""One small real test per hook that had none: a test plugin implements it and the host uses what it gave."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowmason.kernel import plugins
from flowmason.kernel.errors import ConfigError, NotFoundError
from flowmason.kernel.plugins import hookimpl
from flowmason.kernel.providers import Completion
from flowmason.kernel.runner import Runner

from tests.kernel.helpers import P, S


@pytest.fixture
def with_plugin():
    """``with_plugin(obj)`` registers a test plugin on top of the defaults; the manager is rebuilt after."""

    def add(*objs):
        plugins.reset(None, extra=list(objs))

    yield add
    plugins.reset()


class EchoProvider:
    """A provider that answers with the prompt upside down, and counts its calls."""

    name = "t-echo"
    default_model = "echo-1"

    def __init__(self, settings, calls):
        self.settings = settings
        self.calls = calls

    async def complete(self, request):
        self.calls.append(request.prompt)
        return Completion(text=request.prompt[::-1], model=request.model or self.default_model, input_tokens=3,
                          output_tokens=3)

    async def stream(self, request):
        yield await self.complete(request)


class ProviderPlugin:
    def __init__(self):
        self.calls: list[str] = []
        self.factories = 0

    @hookimpl
    def fm_register_providers(self, register):
        def factory(settings):
            self.factories += 1
            return EchoProvider(settings, self.calls)

        register("t-echo", factory)


def test_fm_register_providers_a_registered_provider_answers_an_llm_stage(with_plugin):
    plugin = ProviderPlugin()
    with_plugin(plugin)
    assert plugin.factories == 0  # registered, not built: the factory is lazy
    p = P({"id": "g", "component_type": "generator", "provider": "t-echo", "config": {"prompt": "{{input.q}}"}})
    run = Runner().run_sync(p, {"q": "stressed"})
    assert run.output["content"] == "desserts"
    assert plugin.calls == ["stressed"] and plugin.factories == 1


class Shouting:
    """A provider wrapper: every answer comes back upper-cased, and each wrapped provider is counted."""

    def __init__(self):
        self.wrapped: list[str] = []

    @hookimpl(wrapper=True)
    def fm_wrap_provider(self, name, provider):
        inner = yield
        self.wrapped.append(name)

        class Loud:
            name = inner.name
            default_model = inner.default_model

            async def complete(self, request):
                done = await inner.complete(request)
                done.text = done.text.upper()
                return done

            def stream(self, request):
                return inner.stream(request)

        return Loud()


def test_fm_wrap_provider_wraps_the_provider_a_stage_gets(with_plugin):
    loud = Shouting()
    with_plugin(ProviderPlugin(), loud)
    p = P({"id": "g", "component_type": "generator", "provider": "t-echo",
           "config": {"prompt": "{{input.q}}", "stream": False}})
    run = Runner().run_sync(p, {"q": "stressed"})
    assert run.output["content"] == "DESSERTS"
    assert loud.wrapped == ["t-echo"]


class MemoryScheme:
    """``tmem://NAME`` opens the SQLite file NAME.db in a folder: a backend under a scheme of its own."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.opened: list[str] = []

    @hookimpl
    def fm_register_storage_backends(self, register):
        from flowmason.plugins.sqlite_store import open_sqlite

        def open_tmem(url):
            name = url.split("://", 1)[1]
            if not name.isidentifier():
                raise ConfigError(f"bad tmem URL {url!r}", field="store", hint="tmem://NAME")
            self.opened.append(name)
            return open_sqlite(f"sqlite:///{self.folder / name}.db")

        register("tmem", open_tmem)


def test_fm_register_storage_backends_a_scheme_opens_by_url_and_records_runs(with_plugin, tmp_path, monkeypatch):
    from flowmason.kernel.runs import RunRepository
    from flowmason.kernel.storage import open_store

    from tests.kernel.helpers import Probe

    scheme = MemoryScheme(tmp_path)
    with_plugin(Probe(), scheme)
    monkeypatch.setenv("FM_STORE", "tmem://main")
    run = Runner(record=True).run_sync(P(S("a", value=1)))
    assert scheme.opened == ["main"] and (tmp_path / "main.db").is_file()
    assert RunRepository(open_store("tmem://main")).get_run(run.id).status == run.status
    with pytest.raises(ConfigError, match="tmem"):
        open_store("tmem://not a name")


class MapLoader:
    """``tmap://NAME`` loads a pipeline from a dict: a reference scheme of a test plugin."""

    def __init__(self, pipelines):
        self.pipelines = pipelines
        self.asked: list[str] = []

    @hookimpl
    def fm_register_loaders(self, register):
        def load(ref, origin):
            name = ref  # the part after tmap://
            self.asked.append(name)
            if name not in self.pipelines:
                raise NotFoundError(f"no pipeline {name!r} in the map")
            return self.pipelines[name]

        register("tmap", load)


def test_fm_register_loaders_a_scheme_serves_runs_and_extends_parents(with_plugin):
    base = {"id": "base", "name": "base", "abstract": True,
            "stages": [{"id": "a", "component_type": "t-echo", "config": {"value": "from-base"}}]}
    child = {"id": "child", "name": "child", "extends": "tmap://base",
             "stages": [{"id": "b", "component_type": "t-echo", "config": {"value": "{{upstream.a.value}}"},
                         "depends_on": ["a"]}]}
    from tests.kernel.helpers import Probe

    loader = MapLoader({"base": base, "child": child})
    with_plugin(Probe(), loader)
    run = Runner().run_sync("tmap://child")
    assert run.output["value"] == "from-base"
    assert loader.asked == ["child", "base"]
    with pytest.raises(NotFoundError):
        Runner().load("tmap://nothing")


class Tagger:
    """An ``fm_resolve_pipeline`` that adds a stage to pipelines tagged ``tagged``, and leaves others alone."""

    def __init__(self):
        self.seen: list[str] = []

    @hookimpl(tryfirst=True)
    def fm_resolve_pipeline(self, pipeline, loader):
        self.seen.append(pipeline.name)
        if "tagged" not in pipeline.tags:
            return None  # not mine: the next implementation (inheritance) decides
        data = pipeline.model_dump(mode="json", by_alias=True, exclude_none=True)
        data["stages"].append({"id": "added", "component_type": "t-echo", "config": {"value": "resolved"},
                               "depends_on": [data["stages"][-1]["id"]]})
        data.pop("output_stage_id", None)
        from flowmason.kernel.model import parse_pipeline

        return parse_pipeline(data)


def test_fm_resolve_pipeline_runs_for_every_pipeline_the_runner_loads(with_plugin, tmp_path):
    from tests.kernel.helpers import Probe

    tagger = Tagger()
    with_plugin(Probe(), tagger)
    (tmp_path / "sub.pipeline.json").write_text(json.dumps(
        {"id": "sub", "name": "sub", "tags": ["tagged"],
         "stages": [{"id": "x", "component_type": "t-echo", "config": {"value": 1}}]}))
    (tmp_path / "main.pipeline.json").write_text(json.dumps(
        {"id": "main", "name": "main", "stages": [{"id": "call", "component_type": "subpipeline",
                                                    "config": {"pipeline_id": "sub.pipeline.json"}}]}))
    pipeline, _ = Runner().load(tmp_path / "sub.pipeline.json")
    assert [s.id for s in pipeline.stages] == ["x", "added"]
    run = Runner().run_sync(tmp_path / "main.pipeline.json")
    assert tagger.seen[-2:] == ["main", "sub"]  # the run's pipeline and, at run time, its sub-pipeline
    assert json.dumps(run.output).count("resolved") == 1


class StageWatcher:
    def __init__(self):
        self.started: list[tuple[str, dict]] = []

    @hookimpl
    def fm_run_started(self, run, pipeline):
        self.started.append((f"run {run.status.value} {pipeline.name}", {}))

    @hookimpl
    def fm_stage_started(self, run, stage, inputs):
        self.started.append((stage.id, inputs))


def test_fm_run_started_then_fm_stage_started_for_each_stage_with_masked_inputs(with_plugin, monkeypatch):
    from tests.kernel.helpers import Probe

    monkeypatch.setenv("FM_VAR_TOKEN", "s3cret-value")
    watcher = StageWatcher()
    with_plugin(Probe(), watcher)
    Runner().run_sync(P(S("a", value="{{env.FM_VAR_TOKEN}}"), S("b", deps=["a"], count=2)))
    assert [sid for sid, _ in watcher.started] == ["run running p", "a", "b"]
    assert "s3cret-value" not in json.dumps(watcher.started)
    assert watcher.started[2][1] == {"count": 2}


class CountExporter:
    @hookimpl
    def fm_register_exporters(self, register):
        register("t-count", lambda run, stages, pipeline: f"{run.id} {len(stages)} {pipeline.name if pipeline else '-'}\n")


def test_fm_register_exporters_a_format_is_used_by_fm_export(with_plugin, tmp_path):
    from typer.testing import CliRunner

    from flowmason.kernel.cli import build_app
    from tests.kernel.helpers import Probe

    with_plugin(Probe(), CountExporter())
    path = tmp_path / "two.pipeline.json"
    path.write_text(json.dumps(P(S("a", value=1), S("b", deps=["a"], value=2)).model_dump(mode="json", exclude_none=True)))
    run = Runner(record=True).run_sync(path)
    result = CliRunner().invoke(build_app(), ["export", run.id, "--format", "t-count", "--pipeline", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{run.id} 2 p\n"
    unknown = CliRunner().invoke(build_app(), ["export", run.id, "--format", "nope"])
    assert unknown.exit_code != 0
