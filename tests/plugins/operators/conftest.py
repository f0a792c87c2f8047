"""Fixtures for the operator tests: the default plugins, a pipeline runner, a real HTTP server.

Every operator runs through the real engine (``run_pipeline`` on a parsed
pipeline) with the default plugins loaded. HTTP tests talk to a stdlib
``ThreadingHTTPServer`` bound to 127.0.0.1 on a free port, whose routes
each test sets and whose received requests each test reads back.
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest

from flowmason.kernel import plugins
from flowmason.kernel.errors import FlowMasonError, PipelineValidationError
from flowmason.kernel.executor import run_pipeline
from flowmason.kernel.model import Run, RunStatus, parse_pipeline
from flowmason.kernel.plan import compile_plan


@pytest.fixture(autouse=True)
def default_plugins():
    plugins.reset()
    yield
    plugins.reset()


def pipeline(*stages: dict[str, Any], **extra: Any):
    return parse_pipeline({"id": extra.pop("id", "ops-test"), "name": "ops-test", "stages": list(stages), **extra})


def stage(sid: str, ctype: str, deps: tuple[str, ...] | list[str] = (), **config: Any) -> dict[str, Any]:
    return {"id": sid, "component_type": ctype, "config": config, "depends_on": list(deps)}


def run(p, inputs: dict[str, Any] | None = None, **kw: Any) -> Run:
    return asyncio.run(run_pipeline(p, inputs or {}, **kw))


def fails(p, inputs: dict[str, Any] | None = None, **kw: Any) -> tuple[FlowMasonError, Run]:
    """Run a pipeline that must fail; returns the error and the run as recorded."""
    record = Run(pipeline_id=p.key, pipeline_name=p.name, inputs=dict(inputs or {}))
    with pytest.raises(FlowMasonError) as info:
        asyncio.run(run_pipeline(p, inputs or {}, run=record, **kw))
    assert record.status is RunStatus.FAILED
    assert record.error and record.error["stage"] == info.value.stage
    return info.value, record


def invalid(p) -> list[FlowMasonError]:
    """Problems `fm validate` reports for ``p`` (compile_plan with the loaded components)."""
    with pytest.raises(PipelineValidationError) as info:
        compile_plan(p, plugins.get_registry().components)
    return info.value.problems


def run_one(ctype: str, run_inputs: dict[str, Any] | None = None, /, **config: Any) -> Any:
    """Run a one-stage pipeline (config as keywords) and return that stage's output."""
    return run(pipeline(stage("s", ctype, **config)), run_inputs).output


@pytest.fixture
def ops():
    """The helpers as one object (tests import nothing from conftest)."""

    class Ops:
        pass

    o = Ops()
    o.pipeline, o.stage, o.run, o.run_one, o.fails, o.invalid = pipeline, stage, run, run_one, fails, invalid
    return o


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, dict[str, str], bytes]


@dataclass
class LocalServer:
    """What the test sets (routes) and reads back (requests)."""

    base: str = ""
    routes: dict[tuple[str, str], Callable[[Request], Reply]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def route(self, method: str, path: str, fn: Callable[[Request], Reply]) -> None:
        self.routes[(method, path)] = fn

    def json_route(self, method: str, path: str, value: Any, status: int = 200) -> None:
        body = json.dumps(value).encode()
        self.route(method, path, lambda r: (status, {"Content-Type": "application/json"}, body))


def _default_routes(server: LocalServer) -> None:
    def echo(r: Request) -> Reply:
        payload = {"method": r.method, "path": r.path, "query": {k: v[0] for k, v in r.query.items()},
                   "headers": r.headers, "body": r.body.decode("utf-8", "replace")}
        try:
            payload["json"] = r.json()
        except ValueError:
            payload["json"] = None
        return 200, {"Content-Type": "application/json"}, json.dumps(payload).encode()

    for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        server.route(method, "/echo", echo)
    server.route("GET", "/text", lambda r: (200, {"Content-Type": "text/plain; charset=utf-8"}, "plain words".encode()))
    for code in (404, 500):
        server.json_route("GET", f"/status/{code}", {"error": f"status {code}"}, status=code)

    def slow(r: Request) -> Reply:
        time.sleep(float(r.query.get("ms", ["1000"])[0]) / 1000)
        return 200, {"Content-Type": "application/json"}, b'{"slow": true}'

    server.route("GET", "/slow", slow)
    server.route("GET", "/big", lambda r: (200, {"Content-Type": "text/plain"}, b"x" * int(r.query["bytes"][0])))
    server.route("GET", "/redirect", lambda r: (302, {"Location": "/echo?from=redirect"}, b""))


class _Handler(BaseHTTPRequestHandler):
    server_version = "fm-test"
    protocol_version = "HTTP/1.1"  # chunked replies need 1.1

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _handle(self) -> None:
        state: LocalServer = self.server.state  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        req = Request(self.command, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()},
                      self.rfile.read(length) if length else b"")
        state.requests.append(req)
        fn = state.routes.get((self.command, parts.path))
        status, headers, body = fn(req) if fn else (404, {"Content-Type": "text/plain"}, b"no route")
        chunked = headers.pop("X-Chunked", None) is not None
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if chunked:  # no Content-Length: the client cannot know the size up front
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 1024):
                piece = body[i:i + 1024]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is what the timeout test wants


@pytest.fixture
def http_server():
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    state = LocalServer(base=f"http://127.0.0.1:{httpd.server_address[1]}")
    _default_routes(state)
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
