"""SSRF through an http-request stage, as a self-registered user of an FM_AUTH=1 server (acceptance finding 4a).

The server has the defaults `fm serve` and the Lambda functions apply
(FM_HTTP_DENY_PRIVATE on). Each attack is one run whose only stage asks
for an internal target: every loopback spelling of a real service on
127.0.0.1, private / link-local / metadata / unique-local / CGNAT /
multicast addresses, a redirect to loopback, and an open port against a
closed one (the port-scan oracle). Refused means: the run failed with the
guard's error, the secret is nowhere in it, and the service saw nothing.
"""
from __future__ import annotations

import time

import pytest

from flowmason.kernel.settings import use_server_defaults
from tests.support.auth_api import register
from tests.support.net import free_port
from tests.support.target_server import ELSEWHERE, LOOPBACK, SECRET, internal_service

REFUSAL = "and this host refuses those"


@pytest.fixture
def server(api):
    use_server_defaults("fm serve")  # the autouse fixture undoes it
    return api, register(api, "mallory@example.com")


def _run(api, acct, url: str) -> dict:
    body = {"pipeline": {"name": "probe", "stages": [
        {"id": "probe", "component_type": "http-request", "config": {"url": url, "timeout_ms": 2000}}]}, "inputs": {}}
    r = api.post("/runs", headers=acct.headers, json=body)
    assert r.status_code == 202, r.text
    for _ in range(1500):  # bounded wait (30 s)
        got = api.get(f"/runs/{r.json()['id']}/result", headers=acct.headers)
        if got.status_code == 200:
            return got.json()
        time.sleep(0.02)
    raise AssertionError("run did not finish")


def test_internal_targets_are_refused(server, attacks, monkeypatch):
    before = len(attacks.failures)  # the suite's tally is shared: judge this test's own attacks
    api, acct = server
    with internal_service() as service, internal_service() as front:
        targets = [f"http://{h}:{service.port}/secret" for h in sorted(LOOPBACK)]
        targets += [f"http://{h}/latest/meta-data/" for h in sorted(ELSEWHERE)]
        for url in targets:
            result = _run(api, acct, url)
            text = str(result)
            attacks.attempt("ssrf", url, result["status"] == "failed" and REFUSAL in text and SECRET not in text)
        attacks.attempt("ssrf", "any loopback spelling reached the service", service.hits == [])
        # a redirect from an allowed target to a forbidden one is refused at the hop
        monkeypatch.setenv("FM_HTTP_ALLOW", f"127.0.0.1:{front.port}")
        result = _run(api, acct, f"{front.base}/redirect?to={service.base}/secret")
        attacks.attempt("ssrf", "redirect to loopback",
                        REFUSAL in str(result) and front.hits == ["/redirect"] and service.hits == [])
    assert attacks.failures[before:] == []


def test_open_and_closed_ports_answer_the_same(server, attacks):
    before = len(attacks.failures)  # the suite's tally is shared: judge this test's own attacks
    api, acct = server
    with internal_service() as service:
        closed = free_port()
        answers = [str(_run(api, acct, f"http://127.0.0.1:{port}/")["error"]).replace(str(port), "PORT")
                   for port in (service.port, closed)]
        attacks.attempt("ssrf port oracle", "open vs closed port", REFUSAL in answers[0] and answers[0] == answers[1] and service.hits == [])
    assert attacks.failures[before:] == []
