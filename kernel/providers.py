"""The LLM provider interface and how a stage's provider is chosen.

Providers are plugins (``fm_register_providers``); a factory is called
the first time a run needs that provider, so an SDK is imported only
then. The provider for a stage is, in order: the stage's ``provider``,
the pipeline's ``metadata.default_provider`` (passed in by the caller),
``FM_PROVIDER``, then the factory its plugin marked ``default = True``.

Interface (``Provider``): ``complete(request) -> Completion`` and
``stream(request) -> async iterator of text chunks, then a Completion``.

Every provider a run gets passes through the ``fm_wrap_provider`` hook
(pluggy wrappers), so record/replay (the ``cassettes`` plugin), caching or
tracing cover every provider, built-in or third-party, without the kernel
knowing about them. ``CompletionRequest.key`` is the stable hash of what
decides an answer, for such wrappers.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol

from .errors import ConfigError, FlowMasonError
from .settings import get_settings


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
    # where the call comes from: names the stage in errors and cassettes; not part of the request key
    stage: str | None = None
    pipeline: str | None = None

    def conversation(self) -> list[dict[str, Any]]:
        """The messages to send: ``messages`` if set, else the prompt as one user turn."""
        if self.messages:
            return self.messages
        return [{"role": "user", "content": self.prompt}]

    def key(self, provider: str) -> str:
        """A stable hash of what decides the answer (cassette key, cache key)."""
        body = {
            "provider": provider,
            "model": self.model,
            "system": self.system,
            "messages": self.conversation(),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
            "json_schema": self.json_schema,
            "extra": self.extra or None,
        }
        text = json.dumps(body, sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


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


class ProviderError(FlowMasonError):
    """A model call failed: provider down, rate limited past retries, bad answer, cassette miss."""

    code = "provider"


def resolve_provider(name: str | None, settings: dict[str, Any] | None = None) -> Provider:
    from .plugins import get_plugin_manager, get_registry

    factories = get_registry().providers
    name = name or get_settings().provider or next(
        (n for n, f in factories.items() if getattr(f, "default", False)), None)
    factory = factories.get(name) if name else None
    if factory is None:
        raise ConfigError(
            f"unknown LLM provider '{name}' (known: {', '.join(sorted(factories)) or 'none'})" if name
            else f"no LLM provider chosen (known: {', '.join(sorted(factories)) or 'none'})",
            field="provider",
            hint="set the stage's provider (or FM_PROVIDER) to one of the known ones, or install the plugin that provides it",
        )
    provider = factory(dict(settings or {}))
    hook = get_plugin_manager().hook.fm_wrap_provider
    if hook.get_hookimpls():
        # the provider itself is the innermost implementation; wrappers receive it from `yield`
        provider = hook.call_extra([_itself], {"name": name, "provider": provider})
    return provider


def _itself(name: str, provider: Provider) -> Provider:
    return provider
