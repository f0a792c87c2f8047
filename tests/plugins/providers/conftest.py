"""Fixtures: a real model-API server on 127.0.0.1 and the environment that points the providers at it.

Shared with the ai_nodes and testing suites (their conftest imports these).
"""
from __future__ import annotations

import pytest

from tests.support.llm_server import LLMServer

KEY = "sk-test-0123456789"


@pytest.fixture
def llm_server():
    server = LLMServer(api_key=KEY).start()
    yield server
    server.stop()


@pytest.fixture
def llm_env(llm_server, monkeypatch):
    """Every provider pointed at the local server, keys set, retries quick."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", llm_server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OLLAMA_HOST", llm_server.url)
    monkeypatch.setenv("LLAMACPP_BASE_URL", llm_server.url)
    monkeypatch.setenv("LLAMACPP_API_KEY", KEY)
    monkeypatch.setenv("FM_LLM_RETRY_BACKOFF_S", "0.01")
    for var in ("FM_PROVIDER", "FM_MODEL", "FM_PRICES", "FM_SECRETS_FILE", "FM_LLM_MAX_RETRIES", "FM_LLM_TIMEOUT_S",
                "OLLAMA_ENDPOINT", "LLAMACPP_NATIVE", "ANTHROPIC_MODEL", "OPENAI_MODEL", "OLLAMA_MODEL"):
        monkeypatch.delenv(var, raising=False)
    return llm_server


@pytest.fixture
def retry_delays(monkeypatch):
    """The pauses the retry loop chose, recorded instead of waited."""
    from flowmason.plugins.providers import base

    delays: list[float] = []

    async def no_wait(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(base, "_sleep", no_wait)
    return delays
