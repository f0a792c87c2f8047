"""The Anthropic provider through the real SDK against a local Messages-API server."""
from __future__ import annotations

import asyncio

import pytest

from flowmason.kernel.errors import ConfigError
from flowmason.kernel.providers import Completion, CompletionRequest, ProviderError, resolve_provider

from .conftest import KEY


def call(request: CompletionRequest, name: str = "anthropic") -> Completion:
    return asyncio.run(resolve_provider(name).complete(request))


def stream(request: CompletionRequest, name: str = "anthropic") -> list:
    async def go():
        return [item async for item in resolve_provider(name).stream(request)]

    return asyncio.run(go())


def test_complete_sends_the_messages_request_and_reads_usage(llm_env):
    c = call(CompletionRequest("name three owls", system="be brief", model="claude-sonnet-4-6", max_tokens=50))
    assert c.text == "Echo: name three owls"
    assert c.model == "claude-sonnet-4-6"
    assert c.input_tokens > 0 and c.output_tokens == 4
    assert c.cost_usd == 0.0  # ANTHROPIC_BASE_URL is on loopback: not the hosted price
    from flowmason.plugins.providers.anthropic import AnthropicProvider

    # the hosted endpoint, sonnet: $3 / $15 per million tokens
    assert AnthropicProvider({"base_url": "https://api.anthropic.com"}).prices["claude-sonnet"] == (3.0, 15.0)
    path, headers, body = llm_env.requests[-1]
    assert path == "/v1/messages"
    assert KEY in (headers.get("x-api-key") or headers.get("authorization", ""))
    assert body["system"] == "be brief" and body["max_tokens"] == 50
    assert body["messages"] == [{"role": "user", "content": "name three owls"}]


def test_stream_yields_deltas_then_the_completion(llm_env):
    items = stream(CompletionRequest("one two three"))
    *chunks, done = items
    assert "".join(chunks) == "Echo: one two three" and len(chunks) == 4
    assert isinstance(done, Completion) and done.text == "Echo: one two three"
    assert done.output_tokens == 4 and done.stop_reason == "end_turn"
    assert llm_env.requests[-1][2]["stream"] is True


def test_429_retry_after_is_honoured_then_success(llm_env, retry_delays):
    llm_env.script.append(("status", 429, {"retry-after": "3"}, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}))
    c = call(CompletionRequest("hi"))
    assert c.text == "Echo: hi"
    assert len(llm_env.requests) == 2
    assert retry_delays == [3.0]


def test_retry_after_ms_wins_over_backoff(llm_env, retry_delays):
    llm_env.script.append(("status", 429, {"retry-after-ms": "250"}, None))
    call(CompletionRequest("hi"))
    assert retry_delays == [0.25]


def test_529_overloaded_is_retried(llm_env, retry_delays):
    llm_env.script.append(("status", 529, {}, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    assert call(CompletionRequest("hi")).text == "Echo: hi"
    assert len(llm_env.requests) == 2 and len(retry_delays) == 1


def test_500_forever_gives_up_after_the_bounded_retries(llm_env, retry_delays, monkeypatch):
    monkeypatch.setenv("FM_LLM_MAX_RETRIES", "3")
    for _ in range(10):
        llm_env.script.append(("status", 500, {}, {"type": "error", "error": {"type": "api_error", "message": "boom"}}))
    with pytest.raises(ProviderError) as info:
        call(CompletionRequest("hi", stage="draft"))
    assert len(llm_env.requests) == 4  # one try and three retries, no more
    assert len(retry_delays) == 3
    err = info.value
    assert err.stage == "draft" and "HTTP 500" in err.message and "after 4 attempts" in err.message
    assert "boom" in err.message


def test_stream_is_retried_before_its_first_token(llm_env, retry_delays):
    llm_env.script.append(("status", 529, {}, None))
    *chunks, done = stream(CompletionRequest("a b"))
    assert done.text == "Echo: a b" and len(llm_env.requests) == 2


def test_a_wait_longer_than_the_limit_fails_now(llm_env, retry_delays):
    llm_env.script.append(("status", 429, {"retry-after": "3600"}, None))
    with pytest.raises(ProviderError) as info:
        call(CompletionRequest("hi", stage="s1"))
    assert "3600" in str(info.value) and "rate limiting" in str(info.value)
    assert retry_delays == [] and len(llm_env.requests) == 1


def test_malformed_body_is_a_clear_error_and_not_retried(llm_env, retry_delays):
    llm_env.script.append(("malformed",))
    with pytest.raises(ProviderError) as info:
        call(CompletionRequest("hi", stage="s1"))
    assert "malformed" in info.value.message and info.value.stage == "s1"
    assert len(llm_env.requests) == 1


def test_time_out_is_bounded(llm_env, retry_delays, monkeypatch):
    monkeypatch.setenv("FM_LLM_TIMEOUT_S", "0.3")
    monkeypatch.setenv("FM_LLM_MAX_RETRIES", "1")
    llm_env.script.extend([("sleep", 2.0), ("sleep", 2.0)])
    with pytest.raises(ProviderError) as info:
        call(CompletionRequest("hi", stage="slow"))
    assert "did not answer in time" in info.value.message and "after 2 attempts" in info.value.message
    assert info.value.stage == "slow"


def test_missing_key_names_the_stage_and_the_variable(llm_env, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ConfigError) as info:
        call(CompletionRequest("hi", stage="writer", pipeline="blog"))
    err = info.value
    assert err.stage == "writer" and err.pipeline == "blog"
    assert "ANTHROPIC_API_KEY" in err.hint
    assert llm_env.requests == []  # nothing was sent


def test_key_from_the_secrets_file(llm_env, monkeypatch, tmp_path):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    secrets = tmp_path / "secrets.json"
    secrets.write_text('{"ANTHROPIC_API_KEY": "%s"}' % KEY)
    monkeypatch.setenv("FM_SECRETS_FILE", str(secrets))
    assert call(CompletionRequest("hi")).text == "Echo: hi"


def test_rejected_key_does_not_leak_the_key(llm_env, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-wrong-secret-value")
    with pytest.raises(ProviderError) as info:
        call(CompletionRequest("hi"))
    assert "rejected the API key" in str(info.value)
    assert "sk-wrong-secret-value" not in str(info.value)
    assert len(llm_env.requests) == 1  # a 401 is final


def test_unknown_model_names_the_model(llm_env):
    llm_env.models = {"claude-sonnet-4-6"}
    with pytest.raises(ProviderError) as info:
        call(CompletionRequest("hi", model="claude-nonexistent", stage="s"))
    assert info.value.field == "model" and "claude-nonexistent" in info.value.message


def test_provider_down_is_a_clear_error(llm_env, retry_delays, monkeypatch):
    llm_env.stop()
    monkeypatch.setenv("FM_LLM_MAX_RETRIES", "1")
    with pytest.raises(ProviderError) as info:
        call(CompletionRequest("hi", stage="s"))
    assert "not reachable" in info.value.message and len(retry_delays) == 1


def test_unknown_provider_lists_the_known_ones(llm_env):
    with pytest.raises(ConfigError) as info:
        resolve_provider("nope")
    assert "anthropic" in info.value.message and "ollama" in info.value.message


def test_a_key_without_the_sdk_names_the_extra_not_a_module_error(tmp_path):
    import json
    import os

    from tests.support.without_extra import run_fm

    doc = tmp_path / "ai.pipeline.json"
    doc.write_text(json.dumps({"name": "tagline", "stages": [
        {"id": "draft", "component_type": "generator", "provider": "anthropic", "config": {"prompt": "a tagline"}}]}))
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-dummy", "FM_HOME": str(tmp_path / "home")}
    done = run_fm(["run", str(doc)], blocked=["anthropic"], env=env)
    assert done.returncode != 0
    assert "pip install 'flowmason[anthropic]'" in done.stderr and "stage 'draft'" in done.stderr
    assert "ModuleNotFoundError" not in done.stderr and "Traceback" not in done.stderr
