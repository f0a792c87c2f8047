"""Expression bombs against the API (acceptance finding 4d): they fail their stage and cannot stall the server.

``test_expression_bombs_fail_their_stage``: every bomb of tests/kernel/test_bounds.py
sent by a self-registered user of an FM_AUTH=1 server fails its run with
the limit named. ``test_health_answers_in_100_ms_while_hostile_pipelines_run``
(the timing test issue 12 asks for): a real `fm serve` on 127.0.0.1 runs
CPU- and memory-heavy expressions while `/health` is polled; every answer
comes within 100 ms (a second window is measured if the first had a slow
answer: a blocked loop fails both, a busy machine's scheduler rarely
twice) and the server's peak memory grows by less than 150 MB.
The same server refuses an http-request to its own loopback (its default).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.kernel.test_bounds import BOMBS
from tests.support.auth_api import register
from tests.support.net import free_port
from tests.support.polling import wait_for
from tests.support.target_server import SECRET, internal_service


def _pipeline(*values: str, keep_going: bool = False) -> dict:
    """One stage per expression; ``keep_going``: every stage runs (on_error continue), not just up to the first."""
    extra = {"on_error": "continue"} if keep_going else {}
    return {"name": "bombs", "stages": [
        {"id": f"bomb{i}", "component_type": "variable-set", "config": {"name": f"v{i}", "value": "{{" + v + "}}"},
         **extra} for i, v in enumerate(values)]}


def test_expression_bombs_fail_their_stage(api, attacks):
    before = len(attacks.failures)  # the suite's tally is shared: judge this test's own attacks
    acct = register(api, "mallory@example.com")
    for expression, limit in sorted(BOMBS.items()):
        r = api.post("/runs", headers=acct.headers, json={"pipeline": _pipeline(expression), "inputs": {}})
        assert r.status_code == 202, r.text
        result = wait_for(lambda: (got := api.get(f"/runs/{r.json()['id']}/result", headers=acct.headers))
                          .status_code == 200 and got.json(), timeout=30)
        error = result.get("error") or {}
        attacks.attempt("expression bombs", expression,
                        result["status"] == "failed" and "stopped:" in str(error.get("message"))
                        and error.get("stage") == "bomb0" and error.get("field") == "config.value")
    assert attacks.failures[before:] == []


def _peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")  # pragma: no cover - Linux has it


@pytest.fixture
def fm_serve(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_HTTP")}
    env.update(FM_HOME=str(tmp_path / "home"), PYTHONUNBUFFERED="1")
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "flowmason.kernel.cli", "serve", "--port", str(port),
                             "--store", f"sqlite:///{tmp_path / 'api.db'}"], env=env, stdout=log, stderr=log)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def up():
        try:
            return client.get("/health").status_code == 200
        except httpx.TransportError:
            return proc.poll() is not None  # stop waiting if it died
    wait_for(up, timeout=60)
    assert proc.poll() is None, (tmp_path / "serve.log").read_text()
    yield proc, client
    client.close()
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def _slowest_health_while(client: httpx.Client, body: dict, runs: int = 2) -> tuple[float, list[dict]]:
    """Start ``runs`` runs of ``body``; poll /health every 20 ms until they end. Returns (slowest answer, stages)."""
    ids = [client.post("/runs", json=body).json()["id"] for _ in range(runs)]
    slowest = 0.0
    deadline = time.monotonic() + 120
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        t0 = time.perf_counter()
        assert client.get("/health").status_code == 200
        slowest = max(slowest, time.perf_counter() - t0)
        for rid in list(pending):
            if client.get(f"/runs/{rid}").json()["status"] in ("completed", "failed"):
                pending.discard(rid)
        time.sleep(0.02)
    assert not pending, "the hostile runs did not finish"
    return slowest, [s for rid in ids for s in client.get(f"/runs/{rid}/stages").json()["items"]]


def test_health_answers_in_100_ms_while_hostile_pipelines_run(fm_serve, attacks):
    before = len(attacks.failures)  # the suite's tally is shared: judge this test's own attacks
    proc, client = fm_serve
    hostile = [e for e, limit in BOMBS.items() if set(limit.split()) & {"work", "memory", "time"}]
    hostile += ["len('x'.ljust(10**9))", "len([[1] * 100000 for i in range(2000)])"]
    peak_before = _peak_kb(proc.pid)
    idle = 0.0  # the same poll with nothing running: what this machine's load alone costs, for the message
    for _ in range(25):
        t0 = time.perf_counter()
        client.get("/health")
        idle = max(idle, time.perf_counter() - t0)
        time.sleep(0.02)
    body = {"pipeline": _pipeline(*hostile, keep_going=True), "inputs": {}}
    # a loop the expressions block misses 100 ms every time; a busy machine's scheduler, now and then:
    # so a second window is measured when the first had one slow answer
    windows = []
    for _ in range(2):
        slowest, stages = _slowest_health_while(client, body)
        windows.append(slowest)
        assert len(stages) == 2 * len(hostile) and all(s["status"] == "failed" for s in stages), stages
        if slowest < 0.1:
            break
    grown_mb = (_peak_kb(proc.pid) - peak_before) / 1024
    shown = " then ".join(f"{w * 1000:.0f} ms" for w in windows)
    attacks.attempt("expression stalls the server", f"/health max {shown}", min(windows) < 0.1)
    attacks.attempt("expression grows the server", f"peak +{grown_mb:.0f} MB", grown_mb < 150)
    assert min(windows) < 0.1, (f"/health took {shown} at most while the hostile pipelines ran "
                                f"({idle * 1000:.0f} ms at most when idle)")
    assert grown_mb < 150, f"the server's peak memory grew by {grown_mb:.0f} MB"
    with internal_service() as service:  # fm serve's default: its loopback is out of reach
        rid = client.post("/runs", json={"pipeline": {"name": "probe", "stages": [
            {"id": "probe", "component_type": "http-request", "config": {"url": f"{service.base}/secret"}}]},
            "inputs": {}}).json()["id"]
        result = wait_for(lambda: (got := client.get(f"/runs/{rid}/result")).status_code == 200 and got.json())
        refused = result["status"] == "failed" and "non-public address (loopback)" in str(result)
        attacks.attempt("ssrf", "fm serve's own loopback", refused and SECRET not in str(result) and not service.hits)
    assert attacks.failures[before:] == []
