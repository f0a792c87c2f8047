"""foreach's counters after a break-loop (sequential and parallel), through `fm run` and the HTTP API."""
from __future__ import annotations

import json

import pytest

from tests.plugins.http_api.conftest import make_server, wait_result  # noqa: F401 - the shared API fixture
from tests.support.cli import fm


def breaking_loop(items, *, parallel=False, stop_at=3, break_on_error=True):
    """Each item: break-loop when item == stop_at, else a schema check that the item is an integer."""
    return {"id": "brk", "name": "brk", "version": "1.0.0", "stages": [
        {"id": "loop", "component_type": "foreach", "config": {
            "items": items, "loop_stages": ["stop", "check"], "parallel": parallel, "max_parallel": 4,
            "break_on_error": break_on_error}},
        {"id": "stop", "component_type": "break-loop", "config": {"condition": f"{{{{context.item == {stop_at}}}}}",
                                                                 "result": "stopped at {{context.item}}"}},
        {"id": "check", "component_type": "schema-validate", "depends_on": ["stop"],
         "config": {"data": "{{context.item}}", "schema": {"type": "integer"}}},
    ]}


def run_cli(tmp_path, monkeypatch, capsys, pipeline):
    monkeypatch.setenv("FM_STORE", f"sqlite:///{tmp_path / 'runs.db'}")
    path = tmp_path / "brk.pipeline.json"
    path.write_text(json.dumps(pipeline))
    code, out, err = fm(capsys, "run", "-q", str(path))
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("parallel, items", [(False, [1, 2, 3, 4, 5, 6]), (True, list(range(1, 21)))])
def test_processed_items_stop_at_the_break(tmp_path, monkeypatch, capsys, parallel, items):
    out = run_cli(tmp_path, monkeypatch, capsys, breaking_loop(items, parallel=parallel))
    assert out["broken"] is True and out["break_result"] == "stopped at 3"
    assert len(out["results"]) == 3 and out["processed_items"] == 3
    assert out["is_complete"] is False and out["total_items"] == len(items)


def test_without_a_break_the_loop_is_complete(tmp_path, monkeypatch, capsys):
    out = run_cli(tmp_path, monkeypatch, capsys, breaking_loop([1, 2, 4], stop_at=99, parallel=True))
    assert out["broken"] is False and out["is_complete"] is True and out["processed_items"] == 3


def test_failed_items_before_the_break_are_not_processed_and_later_ones_are_not_counted(tmp_path, monkeypatch, capsys):
    out = run_cli(tmp_path, monkeypatch, capsys,
                  breaking_loop([1, "x", 3, "y", 5], break_on_error=False))
    assert [e["index"] for e in out["errors"]] == [1]  # "y" comes after the break: never ran
    assert len(out["results"]) == 3 and out["processed_items"] == 2 and out["is_complete"] is False


def test_counters_through_the_http_api(make_server):  # noqa: F811 - the fixture imported above
    client = make_server()
    r = client.post("/runs", json={"pipeline": breaking_loop(list(range(1, 21)), parallel=True)})
    assert r.status_code == 202, r.text
    body = wait_result(client, r.json()["id"])
    assert body["status"] == "completed", body
    out = body["output"]
    assert out["broken"] is True and out["processed_items"] == 3 and out["is_complete"] is False
