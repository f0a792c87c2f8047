"""The LLM provider interface and how a stage's provider is chosen.

Providers are plugins (``fm_register_providers``); a factory is called
the first time a run needs that provider, so an SDK is imported only
then. The provider for a stage is, in order: the stage's ``provider``,
the pipeline's ``metadata.default_provider`` (passed in by the caller),
``FM_PROVIDER``, then ``anthropic``.

Interface (``Provider``): ``complete(request) -> Completion`` and
``stream(request) -> async iterator of text chunks, then a Completion``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol

from .errors import ConfigError


@dataclass
class CompletionRequest:
    prompt: str
    system: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int = 1024
    stop: list[str] | None = None
    json_schema: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None  # full conversation, overrides prompt when set
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Completion:
    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    stop_reason: str | None = None
    raw: dict[str, Any] | None = None

    def usage(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "calls": 1,
        }


class Provider(Protocol):
    name: str
    default_model: str

    async def complete(self, request: CompletionRequest) -> Completion: ...

    def stream(self, request: CompletionRequest) -> AsyncIterator[str | Completion]: ...


def resolve_provider(name: str | None, settings: dict[str, Any] | None = None) -> Provider:
    from .plugins import get_registry

    name = name or os.environ.get("FM_PROVIDER") or "anthropic"
    factories = get_registry().providers
    factory = factories.get(name)
    if factory is None:
        raise ConfigError(
            f"unknown LLM provider '{name}' (known: {', '.join(sorted(factories)) or 'none'})",
            field="provider",
            hint="set the stage's provider to one of the known ones, or install the plugin that provides it",
        )
    return factory(dict(settings or {}))
