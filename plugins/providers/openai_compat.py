"""Any OpenAI-compatible endpoint (``/v1/chat/completions``), and llama.cpp's server.

``openai`` talks to api.openai.com or whatever ``OPENAI_BASE_URL`` names
(vLLM, LM Studio, llama.cpp, a gateway). Streaming is server-sent events:
``data: {"choices":[{"delta":{"content":...}}]}`` lines ending in
``data: [DONE]``; usage arrives in the last chunk when the server honours
``stream_options.include_usage``.

``llamacpp`` is llama.cpp's ``llama-server``: by default its
OpenAI-compatible chat route (no key needed; ``LLAMACPP_BASE_URL``, default
``http://127.0.0.1:8080``); with the setting ``native=True`` (or
``LLAMACPP_NATIVE=1``) its own ``/completion`` route, which takes a plain
prompt and streams ``data: {"content": ..., "stop": false}`` events.
"""
from __future__ import annotations

import json
from typing import Any, AsyncIterator

from flowmason.kernel.providers import Completion, CompletionRequest, ProviderError

from .base import CallFailed, HttpProvider, cost_usd, setting, with_retries


def _messages(request: CompletionRequest) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if request.system:
        msgs.append({"role": "system", "content": request.system})
    msgs.extend(request.conversation())
    return msgs


async def _sse_data(resp: Any) -> AsyncIterator[str]:
    """The ``data:`` payloads of a server-sent-event stream."""
    async for line in resp.aiter_lines():
        if line.startswith("data:"):
            yield line[5:].strip()


class OpenAICompatProvider(HttpProvider):
    name = "openai"
    default_model = "gpt-4o-mini"
    base_url_env = "OPENAI_BASE_URL"
    default_base_url = "https://api.openai.com/v1"
    key_env = "OPENAI_API_KEY"
    key_required = True
    chat_path = "/chat/completions"

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self.default_model = str(setting(settings, "default_model", "OPENAI_MODEL", self.default_model))

    def body(self, request: CompletionRequest, model: str, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": _messages(request), "max_tokens": request.max_tokens}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.stop:
            body["stop"] = request.stop
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        body.update(request.extra or {})
        return body

    def completion(self, model: str, text: str, usage: dict[str, Any] | None, stop: str | None) -> Completion:
        usage = usage or {}
        tin = int(usage.get("prompt_tokens") or 0)
        tout = int(usage.get("completion_tokens") or 0)
        return Completion(text=text, model=model, input_tokens=tin, output_tokens=tout,
                          cost_usd=cost_usd(self.prices, model, tin, tout), stop_reason=stop)

    async def complete(self, request: CompletionRequest) -> Completion:
        model = self.model_for(request)
        body = self.body(request, model, stream=False)
        data = await with_retries(lambda: self.post(self.chat_path, body, request), self.retry, self.fail(request))
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise self.fail(request)(CallFailed("malformed", "no choices[0].message.content"), 1) from None
        return self.completion(data.get("model") or model, text, data.get("usage"), choice.get("finish_reason"))

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | Completion]:
        model = self.model_for(request)
        body = self.body(request, model, stream=True)
        resp = await with_retries(lambda: self.open_stream(self.chat_path, body, request), self.retry, self.fail(request))
        parts: list[str] = []
        usage: dict[str, Any] | None = None
        stop: str | None = None
        try:
            async for payload in _sse_data(resp):
                if payload == "[DONE]":
                    break
                event = _decode(payload, self, request)
                if event.get("usage"):
                    usage = event["usage"]
                for choice in event.get("choices") or ():
                    delta = (choice.get("delta") or {}).get("content")
                    if delta:
                        parts.append(delta)
                        yield delta
                    stop = choice.get("finish_reason") or stop
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - a stream cut mid-way is a provider failure, not a retry
            raise self.fail(request)(CallFailed("connect", f"stream broke: {exc}"), 1) from None
        finally:
            await resp.aclose()
        yield self.completion(model, "".join(parts), usage, stop)


def _decode(payload: str, provider: HttpProvider, request: CompletionRequest) -> dict[str, Any]:
    try:
        event = json.loads(payload)
    except ValueError:
        raise provider.fail(request)(CallFailed("malformed", f"bad stream event {payload[:80]!r}"), 1) from None
    if not isinstance(event, dict):
        raise provider.fail(request)(CallFailed("malformed", f"bad stream event {payload[:80]!r}"), 1)
    return event


class LlamaCppProvider(OpenAICompatProvider):
    name = "llamacpp"
    default_model = "default"  # llama-server serves the one model it loaded, whatever the name
    base_url_env = "LLAMACPP_BASE_URL"
    default_base_url = "http://127.0.0.1:8080"
    key_env = "LLAMACPP_API_KEY"  # only if the server was started with --api-key
    key_required = False
    chat_path = "/v1/chat/completions"
    self_hosted = True

    def __init__(self, settings: dict[str, Any]) -> None:
        HttpProvider.__init__(self, settings)
        self.default_model = str(setting(settings, "default_model", "LLAMACPP_MODEL", self.default_model))
        self.native = str(setting(settings, "native", "LLAMACPP_NATIVE", "")).lower() in ("1", "true", "yes")

    def native_body(self, request: CompletionRequest, stream: bool) -> dict[str, Any]:
        # /completion takes one prompt: lay a conversation out as plain turns
        conv = request.conversation()
        if len(conv) == 1:
            turns = [str(conv[0].get("content"))]
        else:
            turns = [f"{str(m.get('role')).capitalize()}: {m.get('content')}" for m in conv] + ["Assistant:"]
        lines = ([request.system] if request.system else []) + turns
        body: dict[str, Any] = {"prompt": "\n\n".join(x for x in lines if x), "n_predict": request.max_tokens, "stream": stream}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.stop:
            body["stop"] = request.stop
        return body

    def native_completion(self, model: str, text: str, data: dict[str, Any]) -> Completion:
        timings = data.get("timings") or {}
        tin = int(data.get("tokens_evaluated") or timings.get("prompt_n") or 0)
        tout = int(data.get("tokens_predicted") or timings.get("predicted_n") or 0)
        stop = "length" if data.get("stopped_limit") else "stop"
        return Completion(text=text, model=data.get("model") or model, input_tokens=tin, output_tokens=tout,
                          cost_usd=0.0, stop_reason=stop)

    async def complete(self, request: CompletionRequest) -> Completion:
        if not self.native:
            return await super().complete(request)
        model = request.model or self.default_model
        body = self.native_body(request, stream=False)
        data = await with_retries(lambda: self.post("/completion", body, request), self.retry, self.fail(request))
        if not isinstance(data.get("content"), str):
            raise self.fail(request)(CallFailed("malformed", "no 'content' in the answer"), 1)
        return self.native_completion(model, data["content"], data)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | Completion]:
        if not self.native:
            async for item in super().stream(request):
                yield item
            return
        model = request.model or self.default_model
        body = self.native_body(request, stream=True)
        resp = await with_retries(lambda: self.open_stream("/completion", body, request), self.retry, self.fail(request))
        parts: list[str] = []
        last: dict[str, Any] = {}
        try:
            async for payload in _sse_data(resp):
                event = _decode(payload, self, request)
                piece = event.get("content")
                if piece:
                    parts.append(piece)
                    yield piece
                if event.get("stop"):
                    last = event
                    break
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self.fail(request)(CallFailed("connect", f"stream broke: {exc}"), 1) from None
        finally:
            await resp.aclose()
        yield self.native_completion(model, "".join(parts), last)
