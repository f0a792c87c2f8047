"""Ollama (local and edge models) over its HTTP API.

``/api/chat`` (the default) takes the conversation (system as the first message) and
streams newline-delimited JSON: ``{"message": {"content": ...}, "done":
false}`` lines, then a ``done: true`` line with ``prompt_eval_count`` and
``eval_count`` (the token counts). ``OLLAMA_HOST`` (default
``http://127.0.0.1:11434``) names the server; no key. Options map onto
Ollama's ``options``: temperature, ``num_predict`` (max tokens), stop.
With the setting ``endpoint="generate"`` (or ``OLLAMA_ENDPOINT=generate``)
calls go to ``/api/generate`` instead: one prompt plus ``system``, and the
text comes back in ``response``.
"""
from __future__ import annotations

import json
from typing import Any, AsyncIterator

from flowmason.kernel.providers import Completion, CompletionRequest, ProviderError

from .base import CallFailed, HttpProvider, setting, with_retries


class OllamaProvider(HttpProvider):
    name = "ollama"
    default_model = "llama3.2"
    base_url_env = "OLLAMA_HOST"
    default_base_url = "http://127.0.0.1:11434"
    self_hosted = True

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        if "://" not in self.base_url:  # OLLAMA_HOST is often written as host:port
            self.base_url = f"http://{self.base_url}"
        self.default_model = str(setting(settings, "default_model", "OLLAMA_MODEL", self.default_model))
        self.generate = str(setting(settings, "endpoint", "OLLAMA_ENDPOINT", "chat")).lower() == "generate"
        self.path = "/api/generate" if self.generate else "/api/chat"

    def body(self, request: CompletionRequest, model: str, stream: bool) -> dict[str, Any]:
        options: dict[str, Any] = {"num_predict": request.max_tokens}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.stop:
            options["stop"] = request.stop
        body: dict[str, Any] = {"model": model, "stream": stream, "options": options}
        if self.generate:
            conv = request.conversation()
            body["prompt"] = conv[0].get("content") if len(conv) == 1 else "\n\n".join(
                f"{str(m.get('role')).capitalize()}: {m.get('content')}" for m in conv) + "\n\nAssistant:"
            if request.system:
                body["system"] = request.system
        else:
            system = [{"role": "system", "content": request.system}] if request.system else []
            body["messages"] = system + request.conversation()
        body.update(request.extra or {})
        return body

    @staticmethod
    def completion(model: str, text: str, data: dict[str, Any]) -> Completion:
        return Completion(
            text=text, model=data.get("model") or model, input_tokens=int(data.get("prompt_eval_count") or 0),
            output_tokens=int(data.get("eval_count") or 0), cost_usd=0.0, stop_reason=data.get("done_reason") or "stop",
        )

    async def complete(self, request: CompletionRequest) -> Completion:
        model = self.model_for(request)
        body = self.body(request, model, stream=False)
        data = await with_retries(lambda: self.post(self.path, body, request), self.retry, self.fail(request))
        text = self.text_of(data)
        if not isinstance(text, str):
            raise self.fail(request)(CallFailed("malformed", "no text (message.content / response) in the answer"), 1)
        return self.completion(model, text, data)

    def text_of(self, event: dict[str, Any]) -> Any:
        if self.generate:
            return event.get("response")
        message = event.get("message")
        return message.get("content") if isinstance(message, dict) else None

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | Completion]:
        model = self.model_for(request)
        body = self.body(request, model, stream=True)
        resp = await with_retries(lambda: self.open_stream(self.path, body, request), self.retry, self.fail(request))
        parts: list[str] = []
        last: dict[str, Any] = {}
        try:
            async for line in resp.aiter_lines():
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    raise self.fail(request)(CallFailed("malformed", f"bad stream line {line[:80]!r}"), 1) from None
                if event.get("error"):
                    raise self.fail(request)(CallFailed("status", str(event["error"]), status=500), 1)
                piece = self.text_of(event)
                if piece:
                    parts.append(piece)
                    yield piece
                if event.get("done"):
                    last = event
                    break
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - a stream cut mid-way is a provider failure
            raise self.fail(request)(CallFailed("connect", f"stream broke: {exc}"), 1) from None
        finally:
            await resp.aclose()
        yield self.completion(model, "".join(parts), last)
