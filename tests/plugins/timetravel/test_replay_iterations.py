"""Replay and what-if of runs with control flow nested in loops reproduce the original results.

The acceptance reproducer: trycatch in a sequential foreach over
[1, "two", 3, "four"] (success / recovered / success / recovered), replayed
from every snapshot with `fm debug replay` on a real SQLite store, and over
the HTTP API. Kept results are the original instances (same stage, same
iteration path), never another iteration's.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowmason.kernel.storage import open_store

from tests.plugins.http_api.conftest import make_server, wait_result  # noqa: F401 - the shared API fixture
from tests.support.cli import fm

NESTED = Path(__file__).resolve().parent.parent.parent / "fixtures" / "nested"
STATUSES = ["success", "recovered", "success", "recovered"]


@pytest.fixture
def store_url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    monkeypatch.setenv("FM_STORE", url)
    return url


def run(capsys, name: str, inputs: dict | None = None) -> tuple[str, dict]:
    path = NESTED / f"{name}.pipeline.json"
    inputs = inputs if inputs is not None else json.loads(path.read_text())["sample_input"]
    code, out, err = fm(capsys, "run", str(path), "--input", json.dumps(inputs))
    assert code == 0, err
    (run_id,) = {w for w in err.split() if w.startswith("run_")}
    return run_id, json.loads(out)


def snapshots(capsys, run_id: str) -> list[dict]:
    code, out, err = fm(capsys, "debug", "timeline", run_id, "--json")
    assert code == 0, err
    return json.loads(out)["snapshots"]


def replay(capsys, run_id: str, seq: int, *extra: str) -> dict:
    code, out, err = fm(capsys, "debug", "replay" if not extra else "what-if", run_id, str(seq), *extra, "--json")
    assert code == 0, err
    return json.loads(out)


def records(url: str, run_id: str) -> dict[str, dict]:
    store = open_store(url)
    try:
        return {i.sk[len("stage#"):]: i.data for i in store.query_all(f"run#{run_id}", prefix="stage#")}
    finally:
        store.close()


def test_trycatch_in_a_sequential_loop_replays_from_every_snapshot(store_url, capsys):
    run_id, out = run(capsys, "trycatch-in-loop")
    assert [r["status"] for r in out["results"]] == STATUSES
    original = records(store_url, run_id)
    snaps = snapshots(capsys, run_id)
    assert len(snaps) == 24  # run start/end, loop, 4 x tc, 4 x risky, 2 x recover: a start and a settle each
    for snap in snaps:
        res = replay(capsys, run_id, snap["seq"])
        assert res["status"] == "completed", snap
        assert res["compare"]["same_output"], snap
        assert all(row["same_output"] for row in res["compare"]["stages"]), snap
        replayed = records(store_url, res["run_id"])
        assert {k: v["status"] for k, v in replayed.items()} == {k: v["status"] for k, v in original.items()}
        for key in res["replay_of"]["resumed"]:  # kept, not run again: the original record, same start time
            assert replayed[key]["started_at"] == original[key]["started_at"], (snap, key)
    last = replay(capsys, run_id, snaps[-1]["seq"])
    assert sorted(last["replay_of"]["resumed"]) == ["recover#1", "recover#3", "risky#0", "risky#2"]


def test_a_top_level_trycatch_replays_its_recovery(store_url, capsys):
    run_id, out = run(capsys, "trycatch")
    assert out["result"]["status"] == "recovered"
    snaps = snapshots(capsys, run_id)
    for snap in snaps:
        res = replay(capsys, run_id, snap["seq"])
        assert res["status"] == "completed" and res["compare"]["b"]["output"] == out, snap
        assert "risky" not in res["replay_of"]["resumed"]  # its failure stopped the try: it runs again
    # what-if on the catch stage: the stage after the trycatch sees the change, though it settled before
    res = replay(capsys, run_id, snaps[-1]["seq"], "--set", 'recover.data={"fixed": true}')
    assert res["compare"]["b"]["output"]["result"] == {"status": "recovered", "caught": {"fixed": True}}
    assert res["replay_of"]["resumed"] == []


def test_loop_in_loop_replays_from_the_middle(store_url, capsys):
    run_id, out = run(capsys, "loop-in-loop")
    snaps = snapshots(capsys, run_id)
    middle = next(s["seq"] for s in snaps if s["kind"] == "stage.finished" and s.get("iteration") == "0/1")
    res = replay(capsys, run_id, middle)
    assert res["compare"]["b"]["output"] == out
    assert sorted(res["replay_of"]["resumed"]) == ["cell#0/0", "cell#0/1"]


def test_what_if_on_a_loop_runs_the_changed_iterations_again(store_url, capsys):
    run_id, _ = run(capsys, "trycatch-in-loop")
    last = snapshots(capsys, run_id)[-1]["seq"]
    # new items: no result of the old items may stand in for them
    res = replay(capsys, run_id, last, "--input", 'items=[5, "six"]')
    out = res["compare"]["b"]["output"]
    assert [r["status"] for r in out["results"]] == ["success", "recovered"]
    assert out["results"][1]["catch_result"]["result"]["item"] == "six" and res["replay_of"]["resumed"] == []
    # a changed stage inside the loop: the loop and trycatch around it run again and carry the change
    res = replay(capsys, run_id, last, "--set", "recover.data={\"fixed\": \"{{context.item}}\"}")
    results = res["compare"]["b"]["output"]["results"]
    assert [r["status"] for r in results] == STATUSES
    assert [r["catch_result"] and r["catch_result"]["result"] for r in results] == [None, {"fixed": "two"}, None, {"fixed": "four"}]
    assert sorted(res["replay_of"]["resumed"]) == ["risky#0", "risky#2"]


@pytest.mark.parametrize("name", ["trycatch-in-loop", "trycatch"])
def test_replay_over_the_http_api(make_server, tmp_path, name):  # noqa: F811 - the fixture imported above
    client = make_server()
    url = f"sqlite:///{tmp_path / 'api.db'}"
    pipeline = json.loads((NESTED / f"{name}.pipeline.json").read_text())
    r = client.post("/runs", json={"pipeline": pipeline, "inputs": pipeline["sample_input"]})
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    original = wait_result(client, run_id)
    assert original["status"] == "completed", original
    snaps = client.get(f"/runs/{run_id}/snapshots").json()["snapshots"]
    for snap in snaps:
        r = client.post(f"/runs/{run_id}/snapshots/{snap['seq']}/replay", json={})
        assert r.status_code == 202, r.text
        body = r.json()
        again = wait_result(client, body["run"]["id"])
        assert again["status"] == "completed" and again["output"] == original["output"], snap
        # the worker reuses the kept instances (loop iterations included) instead of running them again
        before, after = records(url, run_id), records(url, body["run"]["id"])
        for key in body["replay_of"]["resumed"]:
            assert after[key]["started_at"] == before[key]["started_at"], (snap, key)
    if name == "trycatch-in-loop":
        assert sorted(body["replay_of"]["resumed"]) == ["recover#1", "recover#3", "risky#0", "risky#2"]


def test_what_if_over_the_http_api(make_server):  # noqa: F811 - the fixture imported above
    client = make_server()
    pipeline = json.loads((NESTED / "trycatch-in-loop.pipeline.json").read_text())
    r = client.post("/runs", json={"pipeline": pipeline, "inputs": pipeline["sample_input"]})
    run_id = r.json()["id"]
    wait_result(client, run_id)
    last = client.get(f"/runs/{run_id}/snapshots").json()["snapshots"][-1]["seq"]
    r = client.post(f"/runs/{run_id}/snapshots/{last}/replay",
                    json={"inputs": {"items": ["one", 2]}, "stages": {"recover": {"data": "caught {{context.item}}"}}})
    assert r.status_code == 202, r.text
    assert r.json()["replay_of"]["resumed"] == []  # new items: nothing of the old loop stands
    out = wait_result(client, r.json()["run"]["id"])["output"]
    assert [x["status"] for x in out["results"]] == ["recovered", "success"]
    assert out["results"][0]["catch_result"]["result"] == "caught one"
