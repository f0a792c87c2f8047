"""Built-in LLM providers: anthropic, openai (any OpenAI-compatible endpoint), ollama, llamacpp.

Each factory imports its module (and through it httpx or the anthropic
SDK) only when a run first needs that provider; loading this plugin costs
nothing. See ``base`` for keys, retries and prices, ``testing`` for local
servers that speak these APIs (tests and benchmarks).
"""
from __future__ import annotations

from typing import Any

from flowmason.kernel.plugins import hookimpl


def _anthropic(settings: dict[str, Any]) -> Any:
    from .anthropic import AnthropicProvider

    return AnthropicProvider(settings)


_anthropic.default = True  # type: ignore[attr-defined]  # the provider when neither stage, pipeline nor FM_PROVIDER names one


def _openai(settings: dict[str, Any]) -> Any:
    from .openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(settings)


def _llamacpp(settings: dict[str, Any]) -> Any:
    from .openai_compat import LlamaCppProvider

    return LlamaCppProvider(settings)


def _ollama(settings: dict[str, Any]) -> Any:
    from .ollama import OllamaProvider

    return OllamaProvider(settings)


@hookimpl
def fm_register_providers(register):
    register("anthropic", _anthropic)
    register("openai", _openai)
    register("ollama", _ollama)
    register("llamacpp", _llamacpp)
