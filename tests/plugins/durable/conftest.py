"""Real processes for recovery tests: `fm run` / `fm serve` subprocesses, and an HTTP server that counts stage runs.

Stages are ``http-request`` calls to ``HitCounter`` (127.0.0.1, a free
port): each call is counted under ``(run id, stage id)`` and held for
``?sleep=`` seconds, so a stage takes its time and every run of it shows
(``?size=N`` answers N bytes of text; each POST's body length is kept in ``received``).
Leases are short (``FM_LEASE_S=1``, a heartbeat of 0.2 s, a recovery scan
every 0.3 s) so a dead process is noticed in about a second.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.support.polling import wait_for  # noqa: F401 - shared with the tests here

FM = [sys.executable, "-m", "flowmason.kernel.cli"]
FAST = {"FM_HEARTBEAT_S": "0.2", "FM_LEASE_S": "1", "FM_RECOVERY_SCAN_S": "0.3", "FM_RECOVERY_GRACE_S": "1"}


class HitCounter:
    def __init__(self) -> None:
        self.hits: Counter = Counter()
        self.received: list[tuple[str, str, int, bytes]] = []  # (run id, stage, body bytes, first byte) per POST
        self.lock = threading.Lock()
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                url = urlparse(self.path)
                run_id, _, stage = url.path.strip("/").partition("/")
                with counter.lock:
                    counter.hits[(run_id, stage)] += 1
                    first = counter.hits[(run_id, stage)] == 1
                query = parse_qs(url.query)
                hold = query.get("first") if first else None  # a first call held long: time to act while it waits
                time.sleep(float((hold or query.get("sleep") or ["0"])[0]))
                size = int((query.get("size") or ["0"])[0])
                body = b"x" * size if size else json.dumps({"stage": stage}).encode()
                try:
                    self.send_response(200)
                    self.send_header("content-type", "text/plain" if size else "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the caller was killed while we slept
                    pass

            def do_POST(self) -> None:  # noqa: N802 - records the length of what the stage sent, then as GET
                length = int(self.headers.get("content-length") or 0)
                received = self.rfile.read(length)
                run_id, _, stage = urlparse(self.path).path.strip("/").partition("/")
                with counter.lock:
                    counter.received.append((run_id, stage, len(received), received[:1]))
                self.do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, run_id: str) -> dict[str, int]:
        with self.lock:
            return {stage: n for (rid, stage), n in self.hits.items() if rid == run_id}

    def runs(self) -> set[str]:
        with self.lock:
            return {rid for rid, _ in self.hits}

    def chain(self, pid: str, n: int, sleep: float, *, hold: str | None = None, hold_s: float = 30) -> dict:
        """``n`` stages s1 -> s2 -> ..., each one counted call that takes ``sleep`` seconds.

        The first call of stage ``hold`` takes ``hold_s`` (the process is killed while it waits).
        """
        stages = []
        for i in range(1, n + 1):
            extra = f"&first={hold_s}" if hold == f"s{i}" else ""
            stage = {"id": f"s{i}", "type": "http-request",
                     "config": {"url": f"{self.url}/{{{{run.id}}}}/s{i}?sleep={sleep}{extra}", "timeout_ms": 60000}}
            if i > 1:
                stage["depends_on"] = [f"s{i - 1}"]
            stages.append(stage)
        return {"id": pid, "name": pid, "stages": stages}


@pytest.fixture
def counter():
    c = HitCounter()
    yield c
    c.server.shutdown()


@pytest.fixture
def env(tmp_path):
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    # FM_HTTP_ALLOW: `fm serve` refuses loopback by default, and the stages call the counter on 127.0.0.1
    return {**os.environ, **FAST, "FM_STORE": store, "PYTHONUNBUFFERED": "1", "FM_HTTP_ALLOW": "127.0.0.1"}


def fm(args: list[str], env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(FM + args, env=env, capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`fm serve` in a subprocess on a free port; ``kill(sig)`` ends it."""

    def __init__(self, env: dict, log: Path) -> None:
        self.port = free_port()
        self.log = log.open("ab")
        self.proc = subprocess.Popen(FM + ["serve", "--port", str(self.port)], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        wait_for(self._up, timeout=60, every=0.1)

    def _up(self) -> bool:
        assert self.proc.poll() is None, "fm serve exited at start"
        try:
            return self.client.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30) -> int:
        self.client.close()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.log.close()
        return code


@pytest.fixture
def serve(env, tmp_path):
    started: list[Server] = []

    def start() -> Server:
        server = Server(env, tmp_path / "serve.log")
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.kill()


def store_of(env: dict):
    from flowmason.kernel.runs import RunRepository
    from flowmason.kernel.storage import open_store

    return RunRepository(open_store(env["FM_STORE"]))
