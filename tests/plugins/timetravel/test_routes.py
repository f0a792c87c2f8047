"""The HTTP routes of time travel, export and output diff, on a real uvicorn server bound to 127.0.0.1."""
from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from flowmason.kernel import plugins
from flowmason.kernel.runs import DEFAULT_ORG, RunRepository, namespace
from flowmason.kernel.storage import open_store
from flowmason.plugins import timetravel

from .helpers import Components, record, story_pipeline

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

NS = namespace(DEFAULT_ORG)  # the local single-user tenant of the API: the root, shared with `fm run`
INPUTS = {"topic": "owls", "style": "gothic"}


@pytest.fixture
def server(tmp_path):
    import uvicorn

    from flowmason.plugins.http_api.app import create_app
    from flowmason.plugins.http_api.services import Services

    plugins.reset(None, extra=[Components()])
    url = f"sqlite:///{tmp_path / 'api.db'}"
    app = create_app(Services.local(url))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(500):
        if srv.started:
            break
        time.sleep(0.01)
    port = srv.servers[0].sockets[0].getsockname()[1]
    store = open_store(url)
    repo = RunRepository(store, NS)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client, repo
    srv.should_exit = True
    thread.join(10)
    store.close()
    plugins.reset()


def items(store):
    return sorted((i.pk, i.sk, json.dumps(i.data, sort_keys=True)) for i in store.scan_all())


def wait_finished(client, run_id):
    for _ in range(300):
        r = client.get(f"/runs/{run_id}/result")
        if r.status_code == 200:
            return r.json()
        time.sleep(0.02)
    raise AssertionError("the replay did not finish")


def test_timeline_state_and_diff(server):
    client, repo = server
    run = record(repo, story_pipeline(), INPUTS)
    r = client.get(f"/runs/{run.id}/snapshots")
    assert r.status_code == 200
    snaps = r.json()["snapshots"]
    assert snaps[0]["kind"] == "run.started" and snaps[-1]["run_status"] == "completed"
    seq = next(s["seq"] for s in snaps if s["kind"] == "stage.finished" and s["stage_id"] == "draft")
    st = client.get(f"/runs/{run.id}/snapshots/{seq}").json()
    assert st["stages"]["draft"]["status"] == "completed" and st["stages"]["review"]["status"] == "pending"
    d = client.get(f"/runs/{run.id}/snapshots/1/diff/{seq}").json()
    assert d["stages"]["draft"]["status"] == {"a": "pending", "b": "completed"}
    r = client.get(f"/runs/{run.id}/snapshots/999")
    assert r.status_code == 404 and "has no snapshot 999" in r.json()["error"]["message"]
    r = client.get("/runs/run_nope/snapshots")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_what_if_replay_over_http_and_compare(server):
    client, repo = server
    run = record(repo, story_pipeline(), INPUTS)
    snaps = client.get(f"/runs/{run.id}/snapshots").json()["snapshots"]
    seq = next(s["seq"] for s in snaps if s["kind"] == "stage.finished" and s["stage_id"] == "review")
    r = client.post(f"/runs/{run.id}/snapshots/{seq}/replay", json={"stages": {"review": {"prompt": "Rate: {{upstream.draft.text}}"}}})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["replay_of"]["resumed"] == ["draft", "outline"]
    assert body["rerun"] == ["review", "final"]
    new_id = body["run"]["id"]
    result = wait_finished(client, new_id)
    assert result["status"] == "completed"
    cmp = client.get(f"/runs/{run.id}/compare/{new_id}").json()
    rows = {row["stage"]: row for row in cmp["stages"]}
    assert rows["draft"]["same_output"] and not rows["review"]["same_output"]
    assert rows["review"]["b"]["input"]["prompt"].startswith("Rate: Answer:")
    # the replayed run has a timeline of its own that starts with the kept stages
    kinds = [(s["kind"], s["stage_id"]) for s in client.get(f"/runs/{new_id}/snapshots").json()["snapshots"]]
    assert ("stage.restored", "outline") in kinds and ("stage.finished", "review") in kinds
    # and the output diff route shows the word-level change
    d = client.get(f"/runs/{run.id}/diff-output/{new_id}", params={"stage": "review", "field": "prompt"}).json()
    assert d["changed"] and ["delete", "Review this"] in d["ops"] and ["insert", "Rate"] in d["ops"]
    page = client.get(f"/runs/{run.id}/diff-output/{new_id}", params={"stage": "review", "field": "prompt", "format": "html"})
    assert page.headers["content-type"].startswith("text/html") and "<ins>Rate</ins>" in page.text


def test_bad_replays_change_nothing(server, monkeypatch):
    client, repo = server
    run = record(repo, story_pipeline(), INPUTS)
    before = items(repo.store)
    changed = story_pipeline().model_dump(mode="json", exclude_none=True)
    changed["stages"][2]["config"]["prompt"] = "Something else"
    r = client.post(f"/runs/{run.id}/snapshots/3/replay", json={"pipeline": changed})
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "pipeline_changed" and "stage 'review': config.prompt changed" in err["message"]
    r = client.post(f"/runs/{run.id}/snapshots/3/replay", json={"stages": {"nope": {"x": 1}}})
    assert r.status_code == 404 and "no stage 'nope'" in r.json()["error"]["message"]
    r = client.post(f"/runs/{run.id}/snapshots/77/replay", json={})
    assert r.status_code == 404
    assert items(repo.store) == before
    # snapshots removed by retention: 410 Gone, still nothing written
    monkeypatch.setattr(timetravel.RECORDER, "retention_s", 0.05)
    old = record(repo, story_pipeline(), INPUTS)
    time.sleep(0.1)
    before = items(repo.store)
    r = client.post(f"/runs/{old.id}/snapshots/1/replay", json={})
    assert r.status_code == 410 and "removed by retention" in r.json()["error"]["message"]
    assert items(repo.store) == before


def test_export_route(server):
    client, repo = server
    run = record(repo, story_pipeline(), INPUTS)
    page = client.get(f"/runs/{run.id}/export")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "fmPlayer" in page.text
    svg = client.get(f"/runs/{run.id}/export", params={"format": "svg"})
    assert svg.headers["content-type"].startswith("image/svg+xml") and svg.text.startswith("<svg")
    bad = client.get(f"/runs/{run.id}/export", params={"format": "docx"})
    assert bad.status_code == 422 and "unknown export format" in bad.json()["error"]["message"]
    assert client.get("/runs/run_nope/export").status_code == 404
