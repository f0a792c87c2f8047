"""Anthropic's Messages API through the official ``anthropic`` SDK.

The SDK is imported on the first call (about a second of import time), not
when the plugin loads. ``AsyncAnthropic`` gets ``base_url`` from settings
or ``ANTHROPIC_BASE_URL`` and the key from ``ANTHROPIC_API_KEY`` (or the
secrets file); its own retries are off (``max_retries=0``) because
``base.with_retries`` applies one bounded policy to every provider,
honouring ``retry-after`` on 429 and retrying 529 "overloaded" and other
5xx. Streaming reads the raw server-sent events: ``message_start`` (input
tokens), ``content_block_delta`` (text), ``message_delta`` (output tokens,
stop reason), ``message_stop``.

Temperature is sent only when the installed SDK still takes it: recent
Messages API versions dropped sampling parameters, and sending an unknown
field would make every call fail; the stage's temperature is then moot.
"""
from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any, AsyncIterator

from flowmason.kernel.errors import require_extra
from flowmason.kernel.providers import Completion, CompletionRequest, ProviderError

from .base import (
    CallFailed,
    RetryPolicy,
    api_key,
    client_shards,
    cost_usd,
    load_prices,
    provider_error,
    retry_after_seconds,
    fm_setting,
    is_loopback,
    setting,
    shared_client,
    with_retries,
)

KEY_ENV = "ANTHROPIC_API_KEY"


def _failure(exc: Exception) -> CallFailed:
    """SDK exceptions in provider-neutral terms (the SDK is imported by now)."""
    import anthropic

    if isinstance(exc, anthropic.APITimeoutError):
        return CallFailed("timeout", "time-out")
    if isinstance(exc, anthropic.APIConnectionError):
        cause = exc.__cause__
        return CallFailed("connect", str(cause or exc) or type(exc).__name__)
    if isinstance(exc, anthropic.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        err = body.get("error") if isinstance(body.get("error"), dict) else {}
        message = err.get("message") or exc.message
        return CallFailed("status", str(message)[:200], status=exc.status_code,
                          retry_after=retry_after_seconds(exc.response.headers))
    if isinstance(exc, anthropic.APIResponseValidationError):
        return CallFailed("malformed", str(exc)[:200])
    if isinstance(exc, ValueError):  # a body the SDK could not decode (json.JSONDecodeError)
        return CallFailed("malformed", f"{type(exc).__name__}: {exc}"[:200])
    raise exc


@lru_cache(maxsize=1)
def _sdk_params() -> frozenset[str]:
    from anthropic.resources.messages import AsyncMessages

    return frozenset(inspect.signature(AsyncMessages.create).parameters)


class AnthropicProvider:
    name = "anthropic"
    default_model = "claude-sonnet-4-6"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.base_url = setting(settings, "base_url", "ANTHROPIC_BASE_URL", None)
        self.default_model = str(setting(settings, "default_model", "ANTHROPIC_MODEL", self.default_model))
        self.timeout_s = float(fm_setting(settings, "timeout_s", "llm_timeout_s"))
        self.retry = RetryPolicy.from_settings(settings)
        self.prices = load_prices(settings, local=is_loopback(self.base_url))
        self.max_connections = int(fm_setting(settings, "max_connections", "llm_max_connections"))
        self.shards = client_shards(settings)

    def client(self, request: CompletionRequest) -> Any:
        key = api_key(self.settings, KEY_ENV, self.name, request)
        require_extra(("anthropic",), "anthropic", f"provider '{self.name}'", stage=request.stage,
                      pipeline=request.pipeline, field="provider")

        def make() -> Any:
            import anthropic
            import httpx2

            timeout = httpx2.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0))
            per_shard = max(1, self.max_connections // self.shards)
            http = anthropic.DefaultAsyncHttpxClient(
                timeout=timeout, limits=httpx2.Limits(max_connections=per_shard, max_keepalive_connections=per_shard))
            return anthropic.AsyncAnthropic(api_key=key, base_url=self.base_url, max_retries=0, timeout=timeout,
                                            http_client=http)

        return shared_client(("anthropic", self.base_url, key, self.timeout_s, self.max_connections), make, self.shards)

    def params(self, request: CompletionRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": request.model or self.default_model,
            "max_tokens": request.max_tokens,
            "messages": request.conversation(),
        }
        if request.system:
            params["system"] = request.system
        if request.temperature is not None and "temperature" in _sdk_params():
            params["temperature"] = request.temperature
        if request.stop:
            params["stop_sequences"] = request.stop
        if request.extra:
            params["extra_body"] = dict(request.extra)
        return params

    def fail(self, request: CompletionRequest) -> Any:
        url = self.base_url or "https://api.anthropic.com"
        return lambda failure, attempts: provider_error(failure, self.name, request, url, KEY_ENV, attempts)

    def completion(self, model: str, text: str, tin: int, tout: int, stop: str | None) -> Completion:
        return Completion(text=text, model=model, input_tokens=tin, output_tokens=tout,
                          cost_usd=cost_usd(self.prices, model, tin, tout), stop_reason=stop)

    async def complete(self, request: CompletionRequest) -> Completion:
        client = self.client(request)
        params = self.params(request)

        async def attempt() -> Any:
            try:
                return await client.messages.create(**params)
            except Exception as exc:  # noqa: BLE001 - translated, or re-raised when unknown
                raise _failure(exc) from None

        message = await with_retries(attempt, self.retry, self.fail(request))
        try:
            text = "".join(getattr(b, "text", "") for b in message.content if getattr(b, "type", "") == "text")
            usage = message.usage
            return self.completion(message.model or params["model"], text, int(usage.input_tokens or 0),
                                   int(usage.output_tokens or 0), message.stop_reason)
        except (AttributeError, TypeError) as exc:
            raise self.fail(request)(CallFailed("malformed", f"unexpected answer shape: {exc}"), 1) from None

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | Completion]:
        client = self.client(request)
        params = self.params(request)

        async def attempt() -> Any:
            try:
                return await client.messages.create(stream=True, **params)
            except Exception as exc:  # noqa: BLE001
                raise _failure(exc) from None

        events = await with_retries(attempt, self.retry, self.fail(request))
        parts: list[str] = []
        model = params["model"]
        tin = tout = 0
        stop: str | None = None
        try:
            async for event in events:
                kind = getattr(event, "type", "")
                if kind == "content_block_delta":
                    text = getattr(event.delta, "text", None)
                    if text:
                        parts.append(text)
                        yield text
                elif kind == "message_start":
                    msg = event.message
                    model = msg.model or model
                    tin = int(getattr(msg.usage, "input_tokens", 0) or 0)
                    tout = int(getattr(msg.usage, "output_tokens", 0) or 0)
                elif kind == "message_delta":
                    tout = int(getattr(event.usage, "output_tokens", 0) or tout)
                    stop = getattr(event.delta, "stop_reason", None) or stop
                elif kind == "message_stop":
                    break
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - no retry once tokens have gone out
            try:
                failure = _failure(exc)
            except Exception:  # noqa: BLE001
                failure = CallFailed("connect", f"stream broke: {type(exc).__name__}: {exc}")
            raise self.fail(request)(failure, 1) from None
        finally:
            await events.close()
        yield self.completion(model, "".join(parts), tin, tout, stop)
