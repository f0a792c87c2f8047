"""`GET /runs/{id}/events` under a real server: live starts, logs and tokens from the event log, resuming, fallback."""
from __future__ import annotations

import asyncio
import json

from tests.functions import components

from .conftest import wait_result


def _events(lines):
    """(id or None, name, data) for each server-sent event."""
    ev_id = name = None
    for line in lines:
        if line.startswith("id: "):
            ev_id = int(line[4:])
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield ev_id, name, json.loads(line[6:])
            ev_id = name = None


def _talk() -> dict:
    return {"id": "talk", "name": "talk", "stages": [
        {"id": "a", "type": "tally", "config": {"say": "thinking", "tokens": ["Hel", "lo", " world"], "hold": True}},
        {"id": "b", "type": "tally", "depends_on": ["a"], "config": {"value": 2}},
    ]}


def test_a_client_sees_a_stage_start_log_and_stream_tokens_before_it_finishes_and_resumes_without_repeats(make_server):
    client = make_server()
    run = client.post("/runs", json={"pipeline": _talk(), "inputs": {}}).json()
    seen = []
    text = ""
    try:
        with client.stream("GET", f"/runs/{run['id']}/events", params={"interval": 0.05}) as response:
            for ev in _events(response.iter_lines()):
                seen.append(ev)
                if ev[1] == "stage.token":
                    text += ev[2]["text"]
                    if text == "Hello world":
                        # everything so far reached the client while stage a is still waiting for the test
                        assert components.DONE["a"] == 0 and not components.HOLD.is_set()
                        assert [n for _, n, _ in seen if n.startswith("stage.")][:2] == ["stage.started", "stage.log"]
                        assert "stage.completed" not in [n for _, n, _ in seen]
                        components.HOLD.set()
    finally:
        components.HOLD.set()  # never leave the server's run waiting
    names = [n for _, n, _ in seen]
    assert text == "Hello world" and 1 <= names.count("stage.token") <= 3
    assert names[0] == "run.running" and names[-1] == "run.completed"
    assert [(d["stage_id"], n) for _, n, d in seen if n in ("stage.started", "stage.completed")] == [
        ("a", "stage.started"), ("a", "stage.completed"), ("b", "stage.started"), ("b", "stage.completed")]
    log = next(d for _, n, d in seen if n == "stage.log")
    assert log["message"] == "thinking" and log["data"] == {"key": "a"} and log["stage_id"] == "a"
    ids = [i for i, _, _ in seen]
    assert all(isinstance(i, int) for i in ids) and ids == sorted(set(ids))

    # a reconnecting EventSource sends the last id it saw; ?after= does the same by hand
    cut = ids[2]
    with client.stream("GET", f"/runs/{run['id']}/events", headers={"Last-Event-ID": str(cut)}) as response:
        again = list(_events(response.iter_lines()))
    assert again == [ev for ev in seen if ev[0] > cut]
    with client.stream("GET", f"/runs/{run['id']}/events", params={"after": ids[-2]}) as response:
        assert [n for _, n, _ in _events(response.iter_lines())] == ["run.completed"]
    # a client that comes after the end still gets it all
    with client.stream("GET", f"/runs/{run['id']}/events") as response:
        assert list(_events(response.iter_lines())) == seen
    assert client.get(f"/runs/{run['id']}/events", params={"after": "soon"}).status_code == 422
    assert client.get(f"/runs/{run['id']}/events", headers={"Last-Event-ID": "-3"}).status_code == 422


def test_a_run_recorded_without_an_event_log_still_streams_its_settled_stages(make_server, tmp_path):
    from flowmason.kernel.executor import run_pipeline
    from flowmason.kernel.model import parse_pipeline
    from flowmason.kernel.runs import RunRepository
    from flowmason.kernel.storage import open_store

    client = make_server()
    store = open_store(f"sqlite:///{tmp_path / 'api.db'}")  # the server's store, as `fm run` on it would write
    pipeline = parse_pipeline(components.chain("cli", 2))
    run = asyncio.run(run_pipeline(pipeline, {"x": 1}, recorder=RunRepository(store)))
    store.close()
    assert wait_result(client, run.id)["status"] == "completed"
    with client.stream("GET", f"/runs/{run.id}/events") as response:
        seen = list(_events(response.iter_lines()))
    assert [(n, d.get("stage_id")) for _, n, d in seen] == [
        ("stage.completed", "s1"), ("stage.completed", "s2"), ("run.completed", None)]
    assert {i for i, _, _ in seen} == {None}  # nothing to resume from: no log


def test_without_the_events_plugin_runs_keep_no_log_and_stream_their_settled_stages(make_server, monkeypatch):
    monkeypatch.setenv("FM_PLUGINS", "-events")
    client = make_server()
    pipeline = _talk()
    pipeline["stages"][0]["config"]["hold"] = False
    run = client.post("/runs", json={"pipeline": pipeline, "inputs": {}}).json()
    assert wait_result(client, run["id"])["status"] == "completed"
    with client.stream("GET", f"/runs/{run['id']}/events", params={"after": 5}) as response:
        seen = list(_events(response.iter_lines()))
    assert [(n, d.get("stage_id")) for _, n, d in seen] == [
        ("stage.completed", "a"), ("stage.completed", "b"), ("run.completed", None)]
