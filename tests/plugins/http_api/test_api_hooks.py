"""The authentication and rate-limit hooks the HTTP API consults, and `fm serve` as a real process."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flowmason.kernel.plugins import hookimpl
from tests.functions.components import chain

from .conftest import wait_result
from .test_api_http import assert_error

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
TOKENS = {
    "alice": {"subject": "alice", "org_id": "acme", "roles": ["member"], "scopes": ["read", "write", "run"]},
    "victor": {"subject": "victor", "org_id": "acme", "roles": ["viewer"], "scopes": ["read"]},
    "bob": {"subject": "bob", "org_id": "globex", "roles": ["owner"], "scopes": ["read", "write", "run", "admin"]},
}


class TokenAuth:
    """An authenticator plugin: ``Authorization: Bearer <name>`` from a fixed table."""

    async def authenticate(self, request):
        header = request.headers.get("authorization", "")
        return TOKENS.get(header.removeprefix("Bearer ").strip()) if header.startswith("Bearer ") else None

    @hookimpl
    def fm_register_authenticators(self, register):
        register("test-tokens", self)


class CountingLimiter:
    """A rate-limiter plugin: two requests per subject, then 429."""

    def __init__(self):
        self.seen = {}

    def check(self, request, identity):
        key = (identity or {}).get("subject", "anonymous")
        self.seen[key] = self.seen.get(key, 0) + 1
        left = 2 - self.seen[key]
        headers = {"RateLimit-Limit": "2", "RateLimit-Remaining": str(max(0, left))}
        return {"allowed": left >= 0, "retry_after": 30, "headers": headers}

    @hookimpl
    def fm_register_rate_limiters(self, register):
        register("test-counting", self)


def as_(name):
    return {"Authorization": f"Bearer {name}"}


def test_routes_need_an_identity_once_an_authenticator_is_registered(make_server):
    client = make_server(extra=[TokenAuth()])
    err = assert_error(client.get("/runs"), 401, "unauthorized")
    assert err["hint"]
    assert client.get("/runs").headers["www-authenticate"] == "Bearer"
    assert_error(client.get("/runs", headers=as_("mallory")), 401, "unauthorized")
    assert client.get("/health").status_code == 200  # public
    assert client.get("/runs", headers=as_("alice")).status_code == 200


def test_scopes_decide_what_an_identity_may_do(make_server):
    client = make_server(extra=[TokenAuth()])
    assert client.post("/pipelines", json=chain("p", 1), headers=as_("alice")).status_code == 201
    assert client.get("/pipelines/p", headers=as_("victor")).status_code == 200
    assert_error(client.post("/runs", json={"pipeline_id": "p"}, headers=as_("victor")), 403, "forbidden")
    assert_error(client.post("/pipelines/p/versions", json=chain("p", 2), headers=as_("victor")), 403, "forbidden")


def test_one_organization_never_sees_another_ones_pipelines_or_runs(make_server):
    client = make_server(extra=[TokenAuth()])
    client.post("/pipelines", json=chain("secret", 1), headers=as_("alice"))
    run = client.post("/runs", json={"pipeline_id": "secret", "inputs": {"x": 1}}, headers=as_("alice")).json()
    assert wait_result(client, run["id"], headers=as_("alice"))["status"] == "completed"
    bob = as_("bob")
    assert_error(client.get("/pipelines/secret", headers=bob), 404, "not_found")
    assert_error(client.post("/runs", json={"pipeline_id": "secret"}, headers=bob), 404, "not_found")
    for path in (f"/runs/{run['id']}", f"/runs/{run['id']}/result", f"/runs/{run['id']}/stages"):
        assert_error(client.get(path, headers=bob), 404, "not_found")
    assert_error(client.post(f"/runs/{run['id']}/cancel", headers=bob), 404, "not_found")
    assert client.get("/runs", headers=bob).json()["items"] == []
    assert client.get("/pipelines", headers=bob).json()["items"] == []
    # bob may use the same pipeline id in his own organization
    assert client.post("/pipelines", json=chain("secret", 2), headers=bob).status_code == 201


def test_the_rate_limiter_hook_adds_headers_and_refuses_with_429(make_server):
    client = make_server(extra=[CountingLimiter()])
    first = client.get("/runs")
    assert first.status_code == 200 and first.headers["ratelimit-remaining"] == "1"
    assert client.get("/runs").status_code == 200
    refused = client.get("/runs")
    assert_error(refused, 429, "rate_limited")
    assert refused.headers["retry-after"] == "30"
    assert refused.headers["ratelimit-remaining"] == "0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["embedded", "aws-local"])
def test_fm_serve_runs_the_api_on_a_local_port(tmp_path, mode):
    if mode == "aws-local":
        pytest.importorskip("moto")
    port = _free_port()
    env = {**os.environ, "FM_HOME": str(tmp_path)}
    extra = ["--aws-local"] if mode == "aws-local" else ["--store", f"sqlite:///{tmp_path / 'serve.db'}"]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from flowmason.kernel.cli import main; main()", "serve", "--port", str(port), *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = client.get("/health")
                break
            except httpx.TransportError:
                assert proc.poll() is None, f"fm serve exited with {proc.returncode}"
                time.sleep(0.1)
        else:
            raise AssertionError("fm serve did not answer")
        assert health.json() == {"status": "ok"}
        hello = json.loads((EXAMPLES / "hello.pipeline.json").read_text())
        run = client.post("/runs", json={"pipeline": hello, "inputs": hello["example_input"]})
        assert run.status_code == 202, run.text
        result = wait_result(client, run.json()["id"], timeout=60)
        assert result["status"] == "completed", result
        assert result["output"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
