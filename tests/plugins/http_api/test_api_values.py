"""Whole values through the HTTP API (fm serve's app under uvicorn, SQLite): results, stage pages, value links.

A value over the item limit is stored in the blob store and answered
whole; an answer keeps its values under 4 MB (Lambda's limit is 6 MB) and
links the rest, each link answering the whole value.
"""
from __future__ import annotations

import json

from .conftest import wait_result

BIG = "x" * 600_000


def echo(n: int = 1) -> dict:
    """``make`` puts ``input.big`` in its output; ``n - 1`` small stages follow it."""
    stages = [{"id": "make", "type": "json-transform", "config": {"data": "{{input}}", "template": {"body": "{{data.big}}"}}}]
    for i in range(1, n):
        stages.append({"id": f"t{i}", "type": "json-transform", "depends_on": ["make"],
                       "config": {"template": {"n": "{{len(upstream.make.body)}}", "i": i}}})
    return {"id": "echo", "name": "echo", "stages": stages}


def test_a_600_kb_value_is_answered_whole_by_result_run_and_stages(make_server):
    client = make_server(max_body=2 * 1024 * 1024)
    r = client.post("/runs", json={"pipeline": echo(2), "inputs": {"big": BIG}})
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    result = wait_result(client, run_id)
    assert result["status"] == "completed" and result["output"] == {"n": 600_000, "i": 1}
    assert "value_links" not in result
    run = client.get(f"/runs/{run_id}").json()
    assert run["inputs"] == {"big": BIG} and "value_links" not in run
    page = client.get(f"/runs/{run_id}/stages").json()
    by_id = {s["stage_id"]: s for s in page["items"]}
    assert by_id["make"]["output"] == {"body": BIG} and by_id["t1"]["output"] == {"n": 600_000, "i": 1}
    assert page["cursor"] is None
    value = client.get(f"/runs/{run_id}/stages/make/values/output")
    assert value.status_code == 200 and value.json() == {"body": BIG}
    assert client.get(f"/runs/{run_id}/values/inputs").json() == {"big": BIG}
    assert client.get(f"/runs/{run_id}/values/output").json() == {"n": 600_000, "i": 1}  # inline: small


def test_stages_are_paginated_with_an_opaque_cursor_and_documented_in_openapi(make_server):
    client = make_server()
    r = client.post("/runs", json={"pipeline": echo(5), "inputs": {"big": "small"}})
    run_id = r.json()["id"]
    assert wait_result(client, run_id)["status"] == "completed"
    seen, cursor, pages = [], None, 0
    for _ in range(10):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/runs/{run_id}/stages", params=params).json()
        pages += 1
        assert 1 <= len(page["items"]) <= 2
        seen += [s["stage_id"] for s in page["items"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == ["make", "t1", "t2", "t3", "t4"]
    bad = client.get(f"/runs/{run_id}/stages", params={"cursor": "bm90LWEtc3RhZ2U="})  # "not-a-stage"
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"
    assert client.get(f"/runs/{run_id}/stages", params={"limit": 0}).status_code == 422
    assert client.get("/runs/run_nope/stages").status_code == 404
    op = client.get("/openapi.json").json()["paths"]["/runs/{run_id}/stages"]["get"]
    assert {p["name"]: p["in"] for p in op["parameters"]} == {"run_id": "path", "limit": "query", "cursor": "query"}
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/StagePage"}


def test_values_over_the_answer_budget_are_linked_and_each_link_answers_the_whole_value(make_server):
    client = make_server(max_body=12 * 1024 * 1024)
    huge = "y" * (5 * 1024 * 1024)
    r = client.post("/runs", json={"pipeline": echo(1), "inputs": {"big": huge}})
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    result = wait_result(client, run_id, timeout=60)
    assert result["status"] == "completed" and result["output"] is None
    link = result["value_links"]["output"]
    assert link["href"] == f"/runs/{run_id}/values/output" and link["size_bytes"] > 5 * 1024 * 1024
    whole = client.get(link["href"])
    assert whole.status_code == 200 and whole.json() == {"body": huge}
    run = client.get(f"/runs/{run_id}")
    assert len(run.content) < 6 * 1024 * 1024 and set(run.json()["value_links"]) == {"inputs", "output"}
    page = client.get(f"/runs/{run_id}/stages")
    assert len(page.content) < 6 * 1024 * 1024
    (make,) = page.json()["items"]
    assert make["output"] is None and make["value_links"]["output"]["href"] == f"/runs/{run_id}/stages/make/values/output"
    assert json.loads(client.get(make["value_links"]["output"]["href"]).content) == {"body": huge}
    assert client.get(f"/runs/{run_id}/stages/make/values/nope").status_code == 404
    assert client.get(f"/runs/{run_id}/stages/nope/values/output").status_code == 404


def test_a_saved_pipeline_over_the_item_limit_is_kept_whole_and_runs(make_server):
    client = make_server(max_body=2 * 1024 * 1024)
    text = "p" * 500_000  # a long prompt template, say
    definition = {"id": "long", "name": "long", "stages": [
        {"id": "say", "type": "json-transform", "config": {"template": {"text": text, "n": "{{input.n}}"}}}]}
    saved = client.post("/pipelines", json=definition)
    assert saved.status_code == 201, saved.text
    assert client.get("/pipelines/long").json()["definition"]["stages"][0]["config"]["template"]["text"] == text
    r = client.post("/runs", json={"pipeline_id": "long", "inputs": {"n": 3}})
    assert r.status_code == 202, r.text
    result = wait_result(client, r.json()["id"])
    assert result["status"] == "completed" and result["output"] == {"text": text, "n": 3}
