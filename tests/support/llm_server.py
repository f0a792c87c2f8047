"""A real HTTP server on 127.0.0.1 that speaks the model APIs, for tests and benchmarks.

``LLMServer`` answers Anthropic's Messages API (``POST /v1/messages``, JSON
or server-sent events), OpenAI's chat completions (``/v1/chat/completions``
and ``/chat/completions``, JSON or SSE), Ollama (``/api/chat``,
``/api/generate``, JSON or NDJSON) and llama.cpp's ``/completion``, so the
providers are exercised through their real client code (the anthropic
SDK, httpx) over real sockets. It is a small asyncio HTTP/1.1 server with
keep-alive and chunked streaming, running in a background thread (tests)
or its own process (``python -m tests.support.llm_server --delay-ms 20``
from the repository root, which prints the URL; benchmarks).

What it says is up to the test: ``responder(api, body) -> str`` writes the
answer text (default: echo the last user message); ``script`` is a queue of
one-shot behaviours for the next requests: ``("status", code, headers,
body)``, ``("sleep", seconds)`` (a time-out), ``("malformed",)`` (a 200 with a
body that is not JSON), ``("drop",)`` (close the connection without an
answer). ``requests`` records (path, headers, decoded body) of every call.

Why hand-written and not pytest-httpserver or werkzeug's server: the
benchmarks hold hundreds of concurrent keep-alive connections each waiting
``delay_s`` (one asyncio loop does that; a thread per request would be
the measured cost), and the ``drop`` script closes a connection without
any answer, which a WSGI server cannot express. pytest-httpserver is not
a dependency either; werkzeug is only moto's.
"""
from __future__ import annotations

import asyncio
import collections
import json
import re
import threading
import time
from typing import Any, Callable

Responder = Callable[[str, dict[str, Any]], str]

_STATUS_TEXT = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 408: "Request Timeout",
                429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable", 529: "Overloaded"}


def _last_user(body: dict[str, Any]) -> str:
    if "prompt" in body and "messages" not in body:
        return str(body["prompt"])
    for msg in reversed(body.get("messages") or []):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):  # Anthropic content blocks
                return "".join(b.get("text", "") for b in content if isinstance(b, dict))
            return str(content)
    return ""


def echo(api: str, body: dict[str, Any]) -> str:
    return f"Echo: {_last_user(body)}"


def _words(text: str) -> int:
    return len(text.split())


def _pieces(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text) or [""]


def _input_tokens(body: dict[str, Any]) -> int:
    n = _words(str(body.get("system") or "")) + _words(str(body.get("prompt") or ""))
    for msg in body.get("messages") or []:
        n += _words(json.dumps(msg.get("content")) if not isinstance(msg.get("content"), str) else msg["content"])
    return max(n, 1)


class LLMServer:
    def __init__(self, *, responder: Responder | None = None, delay_s: float = 0.0, api_key: str | None = None,
                 models: set[str] | None = None) -> None:
        self.responder = responder or echo
        self.delay_s = delay_s
        self.api_key = api_key  # when set, requests must carry it (x-api-key or bearer)
        self.models = models  # when set, other model names get the API's 404
        self.script: collections.deque = collections.deque()
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.requests]

    # -- lifecycle --
    def start(self) -> "LLMServer":
        ready = threading.Event()

        async def run() -> None:
            self._stopping = asyncio.Event()
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=2048)
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            await self._stopping.wait()
            self._server.close()
            # end open keep-alive connections too: their handlers see EOF and return
            for writer in list(self._writers):
                writer.close()
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if rest:
                await asyncio.wait(rest, timeout=5)

        def main() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(run())
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="llm-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the local model server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stopping.set)
            except RuntimeError:  # already stopped
                pass
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> "LLMServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def serve_forever(self, host: str = "127.0.0.1", port: int = 0, ready: Callable[[str], None] | None = None) -> None:
        """Run in the current loop (the benchmark's server process)."""
        self._server = await asyncio.start_server(self._handle, host, port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]
        if ready:
            ready(self.url)
        async with self._server:
            await self._server.serve_forever()

    # -- HTTP --
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    method, path, _ = line.decode("latin-1").split(" ", 2)
                except ValueError:
                    break
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length") or 0)
                raw = await reader.readexactly(n) if n else b""
                keep = await self._respond(method, path.split("?")[0], headers, raw, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - the client may be gone already
                pass

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str = "application/json",
                    headers: dict[str, str] | None = None) -> None:
        head = [f"HTTP/1.1 {status} {_STATUS_TEXT.get(status, 'Status')}", f"content-type: {ctype}",
                f"content-length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()

    async def _respond(self, method: str, path: str, headers: dict[str, str], raw: bytes, writer: asyncio.StreamWriter) -> bool:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        self.requests.append((path, headers, body))
        api = {"/v1/messages": "anthropic", "/v1/chat/completions": "openai", "/chat/completions": "openai",
               "/api/chat": "ollama", "/api/generate": "ollama-generate", "/completion": "llamacpp"}.get(path)
        if method != "POST" or api is None:
            await self._send(writer, 404, b'{"error": "not found"}')
            return True
        action = self.script.popleft() if self.script else None
        if action is not None:
            if action[0] == "status":
                _, code, extra, payload = (tuple(action) + (None, None))[:4]
                await self._send(writer, code, json.dumps(payload or {"error": {"message": f"HTTP {code}"}}).encode(),
                                 headers=extra or {})
                return True
            if action[0] == "sleep":
                await asyncio.sleep(action[1])
            elif action[0] == "malformed":
                await self._send(writer, 200, b"{this is not json")
                return True
            elif action[0] == "drop":
                return False
        if self.api_key is not None:
            given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ").strip()
            if given != self.api_key:
                await self._send(writer, 401, json.dumps({"type": "error", "error": {"type": "authentication_error",
                                                                                      "message": "invalid x-api-key"}}).encode())
                return True
        model = str(body.get("model") or "default")
        if self.models is not None and model not in self.models:
            err = {"error": f'model "{model}" not found, try pulling it first'} if api.startswith("ollama") else \
                {"type": "error", "error": {"type": "not_found_error", "message": f"model: {model}"}}
            await self._send(writer, 404, json.dumps(err).encode())
            return True
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        text = self.responder(api, body)
        stream = body.get("stream", api.startswith("ollama"))  # Ollama streams unless told not to
        if not stream:
            await self._send(writer, 200, json.dumps(self._whole(api, model, text, body)).encode())
            return True
        ctype = "application/x-ndjson" if api.startswith("ollama") else "text/event-stream"
        writer.write(f"HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ntransfer-encoding: chunked\r\n\r\n".encode())
        for event in self._events(api, model, text, body):
            data = event.encode()
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    # -- API shapes --
    @staticmethod
    def _whole(api: str, model: str, text: str, body: dict[str, Any]) -> dict[str, Any]:
        tin, tout = _input_tokens(body), max(_words(text), 1)
        if api == "anthropic":
            return {"id": f"msg_{time.time_ns()}", "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": tin, "output_tokens": tout}}
        if api == "openai":
            return {"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()), "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}}
        if api == "ollama":
            return {"model": model, "message": {"role": "assistant", "content": text}, "done": True, "done_reason": "stop",
                    "prompt_eval_count": tin, "eval_count": tout}
        if api == "ollama-generate":
            return {"model": model, "response": text, "done": True, "done_reason": "stop",
                    "prompt_eval_count": tin, "eval_count": tout}
        return {"content": text, "stop": True, "model": model, "tokens_evaluated": tin, "tokens_predicted": tout,
                "stopped_limit": False}

    @staticmethod
    def _events(api: str, model: str, text: str, body: dict[str, Any]) -> list[str]:
        tin, tout = _input_tokens(body), max(_words(text), 1)
        pieces = _pieces(text)

        def sse(obj: Any, event: str | None = None) -> str:
            return (f"event: {event}\n" if event else "") + f"data: {json.dumps(obj)}\n\n"

        if api == "anthropic":
            out = [sse({"type": "message_start", "message": {
                "id": f"msg_{time.time_ns()}", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": tin, "output_tokens": 1}}}, "message_start"),
                sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, "content_block_start"),
                sse({"type": "ping"}, "ping")]
            out += [sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}, "content_block_delta")
                    for p in pieces]
            out += [sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                    sse({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                         "usage": {"output_tokens": tout}}, "message_delta"),
                    sse({"type": "message_stop"}, "message_stop")]
            return out
        if api == "openai":
            base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model}
            out = [sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": p}, "finish_reason": None}]})
                   for p in pieces]
            out.append(sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
            if (body.get("stream_options") or {}).get("include_usage"):
                out.append(sse({**base, "choices": [], "usage": {"prompt_tokens": tin, "completion_tokens": tout,
                                                                  "total_tokens": tin + tout}}))
            out.append("data: [DONE]\n\n")
            return out
        if api in ("ollama", "ollama-generate"):
            def line(piece: str, done: bool) -> str:
                obj: dict[str, Any] = {"model": model, "done": done}
                if api == "ollama":
                    obj["message"] = {"role": "assistant", "content": piece}
                else:
                    obj["response"] = piece
                if done:
                    obj.update(done_reason="stop", prompt_eval_count=tin, eval_count=tout)
                return json.dumps(obj) + "\n"

            return [line(p, False) for p in pieces] + [line("", True)]
        out = [sse({"content": p, "stop": False}) for p in pieces]
        out.append(sse({"content": "", "stop": True, "model": model, "tokens_evaluated": tin, "tokens_predicted": tout,
                        "stopped_limit": False}))
        return out


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.support.llm_server --delay-ms 20``: serve until killed; prints the URL."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="A local server speaking the model APIs (tests, benchmarks).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    server = LLMServer(delay_s=args.delay_ms / 1000)

    def ready(url: str) -> None:
        sys.stdout.write(url + "\n")
        sys.stdout.flush()

    try:
        asyncio.run(server.serve_forever(port=args.port, ready=ready))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":  # pragma: no cover
    main()
