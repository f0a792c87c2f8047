"""Through `fm serve`'s app over real HTTP: a pipeline cannot read the server's loopback unless FM_HTTP_ALLOW says so."""
from __future__ import annotations

from tests.support.target_server import SECRET, internal_service

from .conftest import wait_result


def _probe(url: str) -> dict:
    return {"pipeline": {"name": "probe", "stages": [
        {"id": "probe", "component_type": "http-request", "config": {"url": url}}]}, "inputs": {}}


def test_the_server_refuses_loopback_by_default_and_the_allow_list_opens_one_target(make_server, monkeypatch):
    with internal_service() as service:
        client = make_server()
        for host in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]"):
            r = client.post("/runs", json=_probe(f"http://{host}:{service.port}/secret"))
            assert r.status_code == 202, r.text
            result = wait_result(client, r.json()["id"])
            assert result["status"] == "failed", result
            assert "non-public address (loopback)" in str(result) and SECRET not in str(result)
        assert service.hits == []
        monkeypatch.setenv("FM_HTTP_ALLOW", f"127.0.0.1:{service.port}")
        r = client.post("/runs", json=_probe(f"{service.base}/secret"))
        result = wait_result(client, r.json()["id"])
        assert result["status"] == "completed" and SECRET in str(result) and service.hits == ["/secret"]
