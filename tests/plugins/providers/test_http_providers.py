"""OpenAI-compatible, llama.cpp and Ollama providers through httpx against a local server."""
from __future__ import annotations

import asyncio

import pytest

from flowmason.kernel.errors import ConfigError
from flowmason.kernel.providers import Completion, CompletionRequest, ProviderError, resolve_provider

from .conftest import KEY


def call(name: str, request: CompletionRequest) -> Completion:
    return asyncio.run(resolve_provider(name).complete(request))


def stream(name: str, request: CompletionRequest) -> list:
    async def go():
        return [item async for item in resolve_provider(name).stream(request)]

    return asyncio.run(go())


def test_openai_complete_sends_chat_completions(llm_env):
    c = call("openai", CompletionRequest("hello owls", system="sys", model="gpt-4o", temperature=0.2, max_tokens=30,
                                         stop=["END"]))
    assert c.text == "Echo: hello owls" and c.model == "gpt-4o"
    assert c.cost_usd == 0.0  # the server is on loopback: a local model is not billed as the hosted gpt-4o
    path, headers, body = llm_env.requests[-1]
    assert path == "/v1/chat/completions" and headers["authorization"] == f"Bearer {KEY}"
    assert body["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hello owls"}]
    assert body["temperature"] == 0.2 and body["max_tokens"] == 30 and body["stop"] == ["END"]


def test_openai_stream_reads_sse_and_the_usage_chunk(llm_env):
    *chunks, done = stream("openai", CompletionRequest("a b c"))
    assert chunks == ["Echo: ", "a ", "b ", "c"]
    assert done.text == "Echo: a b c" and done.output_tokens == 4 and done.input_tokens == 3
    assert llm_env.requests[-1][2]["stream_options"] == {"include_usage": True}


def test_openai_429_then_success(llm_env, retry_delays):
    llm_env.script.append(("status", 429, {"retry-after": "1"}, {"error": {"message": "rate limited"}}))
    assert call("openai", CompletionRequest("x")).text == "Echo: x"
    assert retry_delays == [1.0] and len(llm_env.requests) == 2


def test_openai_bad_request_is_final(llm_env, retry_delays):
    llm_env.script.append(("status", 400, {}, {"error": {"message": "max_tokens is too large"}}))
    with pytest.raises(ProviderError) as info:
        call("openai", CompletionRequest("x", stage="s"))
    assert "max_tokens is too large" in info.value.message and retry_delays == []


def test_openai_malformed_body(llm_env):
    llm_env.script.append(("malformed",))
    with pytest.raises(ProviderError, match="malformed"):
        call("openai", CompletionRequest("x"))


def test_openai_missing_key(llm_env, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError) as info:
        call("openai", CompletionRequest("x", stage="summarise"))
    assert info.value.stage == "summarise" and "OPENAI_API_KEY" in info.value.hint


def test_llamacpp_chat_route_needs_no_key(llm_env, monkeypatch):
    monkeypatch.delenv("LLAMACPP_API_KEY")
    llm_env.api_key = None
    c = call("llamacpp", CompletionRequest("hi"))
    assert c.text == "Echo: hi" and c.cost_usd == 0.0
    assert llm_env.requests[-1][0] == "/v1/chat/completions"


def test_llamacpp_native_completion_route(llm_env, monkeypatch):
    monkeypatch.setenv("LLAMACPP_NATIVE", "1")
    c = call("llamacpp", CompletionRequest("hi there", system="sys", max_tokens=20))
    assert c.text == "Echo: sys\n\nhi there"
    path, _, body = llm_env.requests[-1]
    assert path == "/completion" and body["n_predict"] == 20 and body["prompt"] == "sys\n\nhi there"
    *chunks, done = stream("llamacpp", CompletionRequest("one two"))
    assert "".join(chunks) == "Echo: one two" == done.text and done.output_tokens == 3


def test_ollama_chat_and_ndjson_stream(llm_env):
    llm_env.api_key = None
    c = call("ollama", CompletionRequest("hi", model="llama3.2", temperature=0.1, max_tokens=9))
    assert c.text == "Echo: hi" and c.input_tokens == 1 and c.output_tokens == 2
    path, _, body = llm_env.requests[-1]
    assert path == "/api/chat" and body["stream"] is False
    assert body["options"] == {"num_predict": 9, "temperature": 0.1}
    *chunks, done = stream("ollama", CompletionRequest("x y"))
    assert chunks == ["Echo: ", "x ", "y"] and done.text == "Echo: x y" and done.output_tokens == 3


def test_ollama_generate_endpoint(llm_env, monkeypatch):
    llm_env.api_key = None
    monkeypatch.setenv("OLLAMA_ENDPOINT", "generate")
    c = call("ollama", CompletionRequest("hi", system="sys"))
    assert c.text == "Echo: hi"
    path, _, body = llm_env.requests[-1]
    assert path == "/api/generate" and body["prompt"] == "hi" and body["system"] == "sys"
    *chunks, done = stream("ollama", CompletionRequest("a"))
    assert "".join(chunks) == done.text == "Echo: a"


def test_ollama_unknown_model(llm_env):
    llm_env.api_key = None
    llm_env.models = {"llama3.2"}
    with pytest.raises(ProviderError) as info:
        call("ollama", CompletionRequest("hi", model="mistral", stage="s"))
    assert info.value.field == "model" and "mistral" in info.value.message and "not found" in info.value.message


def test_ollama_down(llm_env, retry_delays, monkeypatch):
    monkeypatch.setenv("FM_LLM_MAX_RETRIES", "2")
    llm_env.stop()
    with pytest.raises(ProviderError) as info:
        call("ollama", CompletionRequest("hi", stage="local"))
    assert "not reachable" in info.value.message and info.value.stage == "local"
    assert len(retry_delays) == 2


def test_ollama_host_without_scheme(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:11434")
    assert resolve_provider("ollama").base_url == "http://127.0.0.1:11434"


def test_price_table_override(llm_env, monkeypatch, tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text('{"gpt-4o-mini": {"input": 1000000, "output": 0}}')
    monkeypatch.setenv("FM_PRICES", str(prices))
    c = call("openai", CompletionRequest("x"))  # default model gpt-4o-mini
    assert c.cost_usd == pytest.approx(c.input_tokens)
    monkeypatch.setenv("FM_PRICES", "{not json")
    with pytest.raises(ConfigError, match="FM_PRICES"):
        resolve_provider("openai")


def test_local_endpoints_cost_nothing_unless_fm_prices_prices_them(llm_env, monkeypatch):
    from flowmason.plugins.providers.openai_compat import LlamaCppProvider, OpenAICompatProvider

    hosted = OpenAICompatProvider({"base_url": "https://api.openai.com/v1"})
    assert hosted.prices["gpt-4o"] == (2.5, 10.0)  # the hosted endpoint keeps the price table
    for base in ("http://127.0.0.1:9/v1", "http://localhost:9/v1", "http://[::1]:9/v1"):
        assert OpenAICompatProvider({"base_url": base}).prices == {}, base
    assert LlamaCppProvider({"base_url": "http://gpu-box.lan:8080"}).prices == {}  # self-hosted wherever it runs
    monkeypatch.setenv("FM_PRICES", '{"gpt-4o": [1.0, 2.0]}')
    c = call("openai", CompletionRequest("hello owls", model="gpt-4o", max_tokens=30))
    assert c.cost_usd == pytest.approx((c.input_tokens * 1.0 + c.output_tokens * 2.0) / 1e6) and c.cost_usd > 0
