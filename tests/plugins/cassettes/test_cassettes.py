"""Record and replay of model calls (FM_RECORD / FM_REPLAY / use_cassette) around the real providers."""
from __future__ import annotations

import asyncio
import json

import pytest

from flowmason.kernel.errors import ConfigError
from flowmason.kernel.providers import Completion, CompletionRequest, ProviderError, resolve_provider
from flowmason.plugins.cassettes import close_cassettes, use_cassette


@pytest.fixture(autouse=True)
def _fresh_cassettes():
    close_cassettes()
    yield
    close_cassettes()


def complete(name: str, request: CompletionRequest) -> Completion:
    return asyncio.run(resolve_provider(name).complete(request))


def test_record_then_replay_without_server_or_key(llm_env, monkeypatch, tmp_path):
    path = tmp_path / "calls.cassette.json"
    monkeypatch.setenv("FM_RECORD", str(path))
    first = complete("anthropic", CompletionRequest("hello", stage="greet"))
    doc = json.loads(path.read_text())
    [entry] = doc["interactions"]
    assert entry["stage"] == "greet" and entry["provider"] == "anthropic"
    assert entry["request"]["prompt"] == "hello" and entry["response"]["text"] == "Echo: hello"
    assert "sk-" not in path.read_text()  # keys never reach the cassette

    monkeypatch.delenv("FM_RECORD")
    monkeypatch.setenv("FM_REPLAY", str(path))
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    llm_env.stop()
    again = complete("anthropic", CompletionRequest("hello", stage="greet"))
    assert again.text == first.text and again.input_tokens == first.input_tokens


def test_replay_miss_names_stage_and_request_hash(llm_env, monkeypatch, tmp_path):
    path = tmp_path / "c.json"
    with use_cassette(path, "record"):
        complete("openai", CompletionRequest("one", stage="a"))
    request = CompletionRequest("two", stage="b", pipeline="demo")
    with use_cassette(path, "replay"), pytest.raises(ProviderError) as info:
        complete("openai", request)
    err = info.value
    assert err.stage == "b" and err.pipeline == "demo"
    assert request.key("openai") in err.message and "record" in err.hint
    assert len(llm_env.requests) == 1  # the miss did not go to the server


def test_changed_settings_are_a_miss(llm_env, tmp_path):
    path = tmp_path / "c.json"
    with use_cassette(path, "record"):
        complete("openai", CompletionRequest("one", temperature=0.1))
    with use_cassette(path, "replay"), pytest.raises(ProviderError):
        complete("openai", CompletionRequest("one", temperature=0.9))


def test_parallel_identical_calls_replay_per_stage(llm_env, tmp_path):
    answers = iter(["first", "second"])
    llm_env.responder = lambda api, body: next(answers)
    path = tmp_path / "c.json"
    with use_cassette(path, "record"):
        assert complete("openai", CompletionRequest("same", stage="x")).text == "first"
        assert complete("openai", CompletionRequest("same", stage="y")).text == "second"

    async def both():
        p = resolve_provider("openai")
        return await asyncio.gather(p.complete(CompletionRequest("same", stage="y")),
                                    p.complete(CompletionRequest("same", stage="x")))

    with use_cassette(path, "replay"):
        y, x = asyncio.run(both())
    assert (x.text, y.text) == ("first", "second")


def test_stream_replays_the_recorded_chunks(llm_env, tmp_path):
    path = tmp_path / "c.json"

    async def run():
        return [i async for i in resolve_provider("ollama").stream(CompletionRequest("a b c"))]

    llm_env.api_key = None
    with use_cassette(path, "record"):
        recorded = asyncio.run(run())
    llm_env.stop()
    with use_cassette(path, "replay"):
        replayed = asyncio.run(run())
    assert [c for c in replayed if isinstance(c, str)] == [c for c in recorded if isinstance(c, str)] == ["Echo: ", "a ", "b ", "c"]
    assert replayed[-1].text == "Echo: a b c"


def test_update_mode_records_only_what_is_missing(llm_env, tmp_path):
    path = tmp_path / "c.json"
    with use_cassette(path, "record"):
        complete("openai", CompletionRequest("one"))
    with use_cassette(path, "update"):
        complete("openai", CompletionRequest("one"))
        complete("openai", CompletionRequest("two"))
    assert len(llm_env.requests) == 2
    assert [i["request"]["prompt"] for i in json.loads(path.read_text())["interactions"]] == ["one", "two"]


def test_missing_or_broken_cassette(tmp_path):
    with pytest.raises(ConfigError, match="cassette not found"):
        with use_cassette(tmp_path / "nope.json", "replay"):
            pass
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ConfigError, match="cannot read cassette"):
        with use_cassette(bad, "replay"):
            pass


def test_fm_run_record_then_replay(llm_env, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from flowmason.kernel import plugins
    from flowmason.kernel.cli import build_app

    # `fm run --record/--replay` set FM_RECORD / FM_REPLAY in the process: let monkeypatch undo them
    monkeypatch.setenv("FM_RECORD", "")
    monkeypatch.setenv("FM_REPLAY", "")
    pipeline = tmp_path / "hello.pipeline.json"
    pipeline.write_text(json.dumps({"name": "hello", "stages": [
        {"id": "greet", "component_type": "generator", "config": {"prompt": "Say hi to {{input.name}}"}}]}))
    cassette = tmp_path / "hello.cassette.json"
    plugins.reset()
    runner = CliRunner()
    result = runner.invoke(build_app(), ["run", str(pipeline), "--input", '{"name": "Ada"}', "--record", str(cassette),
                                         "--quiet", "--no-record-run"])
    assert result.exit_code == 0, result.output
    assert "Echo: Say hi to Ada" in result.output and cassette.exists()

    llm_env.stop()
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("FM_RECORD", "")
    close_cassettes()
    result = runner.invoke(build_app(), ["run", str(pipeline), "--input", '{"name": "Ada"}', "--replay", str(cassette),
                                         "--quiet", "--no-record-run"])
    assert result.exit_code == 0, result.output
    assert "Echo: Say hi to Ada" in result.output


def test_dropped_connection_is_retried(llm_env, retry_delays):
    llm_env.script.append(("drop",))
    assert complete("anthropic", CompletionRequest("hi")).text == "Echo: hi"
    assert len(retry_delays) == 1
