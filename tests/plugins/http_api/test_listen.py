"""How fm serve listens: loopback unless authenticated or --insecure; header and body deadlines."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from flowmason.kernel.errors import ConfigError
from flowmason.plugins.http_api.listen import check_bind, is_loopback
from tests.support.uvicorn_server import serving


def test_fm_serve_refuses_a_public_interface_with_auth_off_and_says_why(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FM_AUTH"}
    done = subprocess.run([sys.executable, "-m", "flowmason.kernel.cli", "serve", "--host", "0.0.0.0", "--port", "0",
                           "--store", str(tmp_path / "s.db")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "refusing to serve on 0.0.0.0: authentication is off" in done.stderr
    assert "FM_AUTH=1" in done.stderr and "--insecure" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.5", "::1", "[::1]", "localhost"])
def test_loopback_hosts_need_nothing(host):
    assert is_loopback(host)
    check_bind(host, authenticated=False, insecure=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_other_hosts_need_auth_or_insecure(host):
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match="--insecure"):
        check_bind(host, authenticated=False, insecure=False)
    check_bind(host, authenticated=True, insecure=False)
    check_bind(host, authenticated=False, insecure=True)


@pytest.fixture
def app(tmp_path):
    from flowmason.kernel import plugins
    from flowmason.plugins.http_api.app import create_app
    from flowmason.plugins.http_api.services import Services

    plugins.reset()
    yield create_app(Services.local(f"sqlite:///{tmp_path / 'api.db'}"))
    plugins.reset()


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> tuple[bool, bytes]:
    """Send ``trickle`` a byte every 0.1 s; (closed by the server within ``seconds``, what it sent)."""
    sock.settimeout(0.1)
    got = b""
    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        if sent < len(trickle):
            try:
                sock.sendall(trickle[sent:sent + 1])
            except OSError:
                return True, got
            sent += 1
        try:
            data = sock.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            return True, got
        if not data:
            return True, got
        got += data
    return False, got


def test_slow_headers_are_cut_off(app):
    with serving(app, {"FM_HEADER_TIMEOUT_S": "0.5"}) as base:
        slow = _connect(base)
        closed, _ = _closed_within(slow, 5, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200)
        assert closed, "a client trickling its headers kept the connection"
        # a client that sends its request promptly is served as before, also on the same connection twice
        fast = _connect(base)
        fast.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in fast.recv(4096)
        fast.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in fast.recv(4096)


def test_a_slow_body_gets_408(app, monkeypatch):
    monkeypatch.setenv("FM_BODY_TIMEOUT_S", "0.5")  # the app's own deadline: it holds under mangum too
    with serving(app) as base:
        sock = _connect(base)
        sock.sendall(b"POST /runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{")
        closed, got = _closed_within(sock, 5, b'"pipeline": ' + b" " * 100)
        assert b"408" in got.split(b"\r\n", 1)[0], got[:200]
        assert b"request_timeout" in got


def test_fm_serve_without_the_server_extra_names_it():
    from tests.support.without_extra import run_fm

    done = run_fm(["serve", "--port", "0"], blocked=["uvicorn"])
    assert done.returncode != 0 and "pip install 'flowmason[server]'" in done.stderr
    assert "Traceback" not in done.stderr
