"""The HTTP API under uvicorn, over real HTTP: pipelines, runs, events, and every kind of bad request."""
from __future__ import annotations

import json

import pytest

from flowmason.plugins import durable
from tests.functions import components
from tests.functions.components import chain

from .conftest import wait_result


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message", "field", "hint"} <= set(body["error"])
    assert body["error"]["code"] == code
    return body["error"]


def test_pipelines_are_saved_versioned_listed_and_read_back(make_server):
    client = make_server()
    r = client.post("/pipelines", json=chain("p", 2))
    assert r.status_code == 201 and r.json()["version"] == 1
    assert_error(client.post("/pipelines", json=chain("p", 2)), 409, "conflict")
    v2 = {**chain("p", 3), "description": "three stages"}
    r = client.post("/pipelines/p/versions", json=v2)
    assert r.status_code == 201 and r.json()["version"] == 2
    assert len(client.get("/pipelines/p").json()["definition"]["stages"]) == 3
    assert len(client.get("/pipelines/p", params={"version": 1}).json()["definition"]["stages"]) == 2
    assert [v["version"] for v in client.get("/pipelines/p/versions").json()["items"]] == [2, 1]
    assert [p["id"] for p in client.get("/pipelines").json()["items"]] == ["p"]
    err = assert_error(client.get("/pipelines/nope"), 404, "not_found")
    assert "nope" in err["message"]
    assert_error(client.get("/pipelines/p", params={"version": 9}), 404, "not_found")
    assert_error(client.get("/pipelines/p", params={"version": "abc"}), 422, "validation")
    assert_error(client.post("/pipelines/nope/versions", json=chain("nope", 1)), 404, "not_found")


def test_validate_reports_problems_without_saving(make_server):
    client = make_server()
    ok = client.post("/pipelines/validate", json=chain("v", 2)).json()
    assert ok == {"valid": True, "problems": [], "stages": 2}
    bad = {"id": "v", "stages": [{"id": "a", "type": "no-such-thing"}]}
    out = client.post("/pipelines/validate", json=bad).json()
    assert out["valid"] is False and out["problems"][0]["stage"] == "a"
    assert client.get("/pipelines").json()["items"] == []


@pytest.mark.parametrize("content, status, code", [
    (b"{not json", 400, "bad_json"),
    (b"[1, 2]", 422, "validation"),
    (b'{"stages": "not a list"}', 422, "validation"),
    (b'{"id": "x", "stages": [{"id": "a", "type": "no-such-thing"}]}', 422, "pipeline_invalid"),
])
def test_bad_pipeline_bodies_get_one_json_error_shape(make_server, content, status, code):
    client = make_server()
    assert_error(client.post("/pipelines", content=content, headers={"content-type": "application/json"}), status, code)


def test_bad_run_requests_name_the_field(make_server):
    client = make_server()
    err = assert_error(client.post("/runs", json={"pipeline_id": "p", "surprise": 1}), 422, "validation")
    assert err["field"] == "surprise"
    err = assert_error(client.post("/runs", json={"pipeline_id": "p", "inputs": [1]}), 422, "validation")
    assert err["field"] == "inputs"
    assert_error(client.post("/runs", json={}), 422, "validation")
    assert_error(client.post("/runs", json={"pipeline_id": "p", "pipeline": chain("p", 1)}), 422, "validation")
    assert_error(client.post("/runs", json={"pipeline_id": "missing"}), 404, "not_found")


def test_oversized_bodies_are_refused_with_413_whether_or_not_the_length_is_declared(make_server):
    client = make_server(max_body=4096)
    big = {"pipeline_id": "p", "inputs": {"blob": "x" * 10_000}}
    assert_error(client.post("/runs", json=big), 413, "payload_too_large")

    def chunks():
        payload = json.dumps(big).encode()
        for i in range(0, len(payload), 1000):
            yield payload[i:i + 1000]

    response = client.post("/runs", content=chunks(), headers={"content-type": "application/json"})
    assert_error(response, 413, "payload_too_large")
    # just under the limit is fine
    assert client.post("/runs", json={"pipeline": chain("small", 1), "inputs": {"x": "y" * 1000}}).status_code == 202


def test_unknown_ids_routes_and_methods_are_json_errors(make_server):
    client = make_server()
    for path in ("/runs/run_nope", "/runs/run_nope/result", "/runs/run_nope/stages", "/runs/run_nope/events"):
        assert_error(client.get(path), 404, "not_found")
    assert_error(client.post("/runs/run_nope/cancel"), 404, "not_found")
    assert_error(client.get("/no/such/route"), 404, "not_found")
    assert_error(client.delete("/runs"), 405, "method_not_allowed")


def test_a_run_starts_finishes_and_is_listed_with_filters_and_pages(make_server):
    client = make_server()
    client.post("/pipelines", json=chain("p", 2))
    ids = []
    for i in range(3):
        r = client.post("/runs", json={"pipeline_id": "p", "inputs": {"x": i}})
        assert r.status_code == 202 and r.json()["status"] == "pending"
        ids.append(r.json()["id"])
    results = [wait_result(client, run_id) for run_id in ids]
    assert [r["output"]["value"] for r in results] == ["0-2", "1-2", "2-2"]
    assert client.get(f"/runs/{ids[0]}").json()["status"] == "completed"
    stages = client.get(f"/runs/{ids[0]}/stages").json()["items"]
    assert [s["stage_id"] for s in stages] == ["s1", "s2"]

    first = client.get("/runs", params={"limit": 2}).json()
    assert [r["id"] for r in first["items"]] == ids[::-1][:2] and first["cursor"]
    second = client.get("/runs", params={"limit": 2, "cursor": first["cursor"]}).json()
    assert [r["id"] for r in second["items"]] == [ids[0]]
    assert len(client.get("/runs", params={"status": "completed", "pipeline_id": "p"}).json()["items"]) == 3
    assert client.get("/runs", params={"status": "failed"}).json()["items"] == []
    assert_error(client.get("/runs", params={"status": "sideways"}), 422, "validation")
    assert_error(client.get("/runs", params={"limit": 0}), 422, "validation")


def test_the_event_stream_follows_a_run_to_its_end(make_server):
    client = make_server()
    run = client.post("/runs", json={"pipeline": chain("sse", 3, sleep=0.1), "inputs": {"x": 1}}).json()
    events = []
    with client.stream("GET", f"/runs/{run['id']}/events", params={"interval": 0.05}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    names = [n for n, _ in events]
    assert names[-1] == "run.completed"
    assert [d["stage_id"] for n, d in events if n == "stage.completed"] == ["s1", "s2", "s3"]


def test_cancel_stops_a_running_run(make_server, monkeypatch):
    monkeypatch.setenv("FM_CANCEL_POLL_S", "0.05")
    durable.reset_settings()
    client = make_server()
    run = client.post("/runs", json={"pipeline": chain("long", 2, sleep=30), "inputs": {"x": 1}}).json()
    r = client.post(f"/runs/{run['id']}/cancel")
    assert r.status_code == 202
    assert wait_result(client, run["id"])["status"] == "cancelled"
    assert components.DONE["s1"] == 0 and components.CALLS["s2"] == 0


def test_the_openapi_document_describes_the_routes_and_models(make_server):
    doc = make_server().get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert {"post", "get"} <= set(doc["paths"]["/runs"])
    start = doc["paths"]["/runs"]["post"]
    assert start["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/RunIn"}
    assert "inputs" in doc["components"]["schemas"]["RunIn"]["properties"]
    assert doc["paths"]["/runs/{run_id}"]["get"]["parameters"][0]["name"] == "run_id"
    assert "security" not in doc["paths"]["/health"]["get"]
