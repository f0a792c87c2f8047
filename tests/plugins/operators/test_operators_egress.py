"""The egress guard of http-request and webhooks: every loopback spelling, private ranges, redirects, rebinding.

Each loopback variant is first shown to reach the real service on
127.0.0.1 with the guard off (so the refusal below is not a URL httpx
rejects anyway), then refused with it on, with nothing reaching the
service. Addresses where nothing of ours listens (metadata, RFC 1918...)
are refused before connecting, so no packet leaves the machine.
"""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys

import pytest

from flowmason.kernel.errors import ConfigError, StageError
from flowmason.plugins.operators import egress
from tests.support.target_server import ELSEWHERE, LOOPBACK, SECRET, internal_service

@pytest.fixture
def service():
    with internal_service() as target:
        yield target


def _url(host: str, port: int, path: str = "/secret") -> str:
    return f"http://{host}:{port}{path}"


def test_addresses_are_classified_with_their_embedded_ipv4():
    for text, kind in {**{h.strip("[]"): k for h, k in ELSEWHERE.items()}, "127.0.0.1": "loopback", "::1": "loopback",
                       "::ffff:127.0.0.1": "loopback", "0.0.0.0": "unspecified", "198.18.0.1": "private"}.items():
        assert egress.classify(ipaddress.ip_address(text)) == kind, text
    for public in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert egress.classify(ipaddress.ip_address(public)) is None, public


def test_allow_rules_parse_networks_hosts_and_ports():
    r = egress.parse_rule
    assert r("10.0.0.0/8") == egress.Rule(network=ipaddress.ip_network("10.0.0.0/8"))
    assert r("127.0.0.1:8080") == egress.Rule(network=ipaddress.ip_network("127.0.0.1/32"), port=8080)
    assert r("[::1]:8080") == egress.Rule(network=ipaddress.ip_network("::1/128"), port=8080)
    assert r("::1").network == ipaddress.ip_network("::1/128")
    assert r("Search.Internal.:443") == egress.Rule(host="search.internal", port=443)
    for bad in ("10.0.0.0/99", "host:http", "127.0.0.1:0", "[::1]x", "a b", "user@host"):
        with pytest.raises(ConfigError) as info:
            r(bad)
        assert info.value.field == "FM_HTTP_ALLOW" and "10.0.0.0/8" in info.value.hint


@pytest.mark.parametrize("host", sorted(LOOPBACK))
def test_every_loopback_spelling_is_refused_before_connecting(ops, service, monkeypatch, host):
    if LOOPBACK[host]:  # the laptop default: the spelling really reaches the service
        out = ops.run_one("http-request", url=_url(host, service.port))
        assert out["body"] == {"secret": SECRET} and service.hits == ["/secret"]
        service.hits.clear()
    monkeypatch.setenv("FM_HTTP_DENY_PRIVATE", "1")
    err, _ = ops.fails(ops.pipeline(ops.stage("probe", "http-request", url=_url(host, service.port))))
    assert isinstance(err, StageError) and (err.stage, err.field) == ("probe", "config.url")
    kind = "unspecified" if host == "0.0.0.0" else "loopback"  # 0.0.0.0 connects to this host's loopback
    assert f"is a non-public address ({kind}) and this host refuses those" in err.message
    assert "FM_HTTP_DENY_PRIVATE governs this" in err.hint
    suggested = err.hint.split("FM_HTTP_ALLOW=", 1)[1].split(",", 1)[0]
    assert suggested.endswith(f":{service.port}") and egress.parse_rule(suggested)  # a rule that parses
    assert service.hits == []


@pytest.mark.parametrize("host", sorted(ELSEWHERE))
def test_private_link_local_metadata_and_unique_local_are_refused(ops, monkeypatch, host):
    monkeypatch.setenv("FM_HTTP_DENY_PRIVATE", "1")
    err, _ = ops.fails(ops.pipeline(ops.stage("probe", "http-request", url=_url(host, 80), timeout_ms=2000)))
    assert f"is a non-public address ({ELSEWHERE[host]})" in err.message, err.message


def test_a_redirect_to_loopback_is_refused_at_its_hop(ops, monkeypatch):
    with internal_service() as front, internal_service() as inner:
        monkeypatch.setenv("FM_HTTP_DENY_PRIVATE", "1")
        monkeypatch.setenv("FM_HTTP_ALLOW", f"127.0.0.1:{front.port}")  # the first hop is allowed, the second not
        url = f"{front.base}/redirect?to={inner.base}/secret"
        err, _ = ops.fails(ops.pipeline(ops.stage("probe", "http-request", url=url)))
        assert f"127.0.0.1:{inner.port} is a non-public address (loopback)" in err.message
        assert front.hits == ["/redirect"] and inner.hits == []


def test_a_name_is_checked_on_the_address_it_resolves_to_and_connected_there(ops, service, monkeypatch):
    """A custom resolver stands in for DNS: the name answers loopback (a rebinding attack's second answer)."""
    import anyio

    asked = []

    async def resolver(host, port, **kw):
        asked.append(host)
        if host == "rebind.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        raise socket.gaierror(socket.EAI_NONAME, "unknown")

    monkeypatch.setattr(anyio, "getaddrinfo", resolver)
    url = _url("rebind.example", service.port)
    out = ops.run_one("http-request", url=url)  # guard off: connects to the address it resolved, once
    assert out["body"] == {"secret": SECRET} and asked == ["rebind.example"]
    monkeypatch.setenv("FM_HTTP_DENY_PRIVATE", "1")
    err, _ = ops.fails(ops.pipeline(ops.stage("probe", "http-request", url=url)))
    assert f"rebind.example:{service.port} is a non-public address (loopback)" in err.message and service.hits == ["/secret"]


def test_open_and_closed_ports_are_refused_alike(ops, service, closed_port, monkeypatch):
    monkeypatch.setenv("FM_HTTP_DENY_PRIVATE", "1")
    errors = []
    for port in (service.port, closed_port):
        err, _ = ops.fails(ops.pipeline(ops.stage("probe", "http-request", url=_url("127.0.0.1", port))))
        errors.append((type(err), err.field, err.message.replace(str(port), "PORT"), err.hint.replace(str(port), "PORT")))
    assert errors[0] == errors[1] and service.hits == []


def test_the_allow_list_opens_exactly_what_it_names(ops, service, closed_port, monkeypatch):
    monkeypatch.setenv("FM_HTTP_DENY_PRIVATE", "1")
    for allow, allowed, refused in (
        (f"127.0.0.1:{service.port}", ["127.0.0.1", "2130706433"], []),  # an address rule: whatever the spelling
        ("127.0.0.0/8", ["127.0.0.1", "127.1"], []),
        (f"localhost:{service.port}", ["localhost"], ["127.0.0.1"]),
    ):
        monkeypatch.setenv("FM_HTTP_ALLOW", allow)
        for host in allowed:
            assert ops.run_one("http-request", url=_url(host, service.port))["status_code"] == 200, (allow, host)
        for host in refused:
            err, _ = ops.fails(ops.pipeline(ops.stage("probe", "http-request", url=_url(host, service.port))))
            assert "refused" in err.message, (allow, host)
    monkeypatch.setenv("FM_HTTP_ALLOW", f"127.0.0.1:{service.port}")
    err, _ = ops.fails(ops.pipeline(ops.stage("probe", "http-request", url=_url("127.0.0.1", closed_port))))
    assert "is a non-public address (loopback)" in err.message  # another port of the same address stays closed
    monkeypatch.setenv("FM_HTTP_ALLOW", "not a rule")
    err, _ = ops.fails(ops.pipeline(ops.stage("probe", "http-request", url=_url("127.0.0.1", service.port))))
    assert err.field == "FM_HTTP_ALLOW"


def test_webhooks_are_guarded_too(ops, service, monkeypatch):
    monkeypatch.setenv("FM_HTTP_DENY_PRIVATE", "1")
    dest = [{"type": "webhook", "config": {"url": _url("localhost", service.port), "retry_count": 0}}]
    out = ops.run_one("output-router", data=1, destinations=dest)
    assert "is a non-public address (loopback)" in out["results"][0]["error"] and "FM_HTTP_ALLOW" in out["results"][0]["error"]
    assert service.hits == []


def test_fm_run_keeps_local_access_and_names_the_setting(service, tmp_path):
    p = tmp_path / "probe.pipeline.json"
    p.write_text(json.dumps({"name": "probe", "stages": [
        {"id": "probe", "component_type": "http-request", "config": {"url": _url("127.0.0.1", service.port)}}]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_HTTP")}
    ok = subprocess.run([sys.executable, "-m", "flowmason.kernel.cli", "run", str(p)],
                        capture_output=True, text=True, timeout=120, env=env)
    assert ok.returncode == 0, ok.stderr
    assert SECRET in ok.stdout and service.hits == ["/secret"]
    assert "is a non-public address (loopback), allowed here because FM_HTTP_DENY_PRIVATE is off" in ok.stdout + ok.stderr
    refused = subprocess.run([sys.executable, "-m", "flowmason.kernel.cli", "run", str(p)], capture_output=True,
                             text=True, timeout=120, env={**env, "FM_HTTP_DENY_PRIVATE": "1"})
    assert refused.returncode != 0 and "FM_HTTP_ALLOW" in refused.stdout + refused.stderr
    assert service.hits == ["/secret"]
