"""POST /pipelines refuses, with 422 naming the stage and field, what a run would refuse: a field a stage
does not produce, an unknown template root, missing required config, a sub-pipeline that is not saved."""
from __future__ import annotations

from .conftest import wait_result


def refused(client, definition) -> list[dict]:
    r = client.post("/pipelines", json=definition)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "pipeline_invalid"
    return error.get("problems") or [error]


def test_static_problems_are_refused_with_the_stage_and_field(make_server):
    client = make_server()
    (p,) = refused(client, {"id": "f", "stages": [
        {"id": "a", "type": "json-transform", "config": {"template": {"value": 1}}},
        {"id": "b", "type": "json-transform", "depends_on": ["a"], "config": {"template": {"v": "{{upstream.a.vaule}}"}}},
    ]})
    assert p["stage"] == "b" and p["field"] == "config.template" and "'vaule'" in p["message"]
    assert "did you mean 'value'?" in p["message"]
    (p,) = refused(client, {"id": "r", "stages": [{"id": "a", "type": "logger", "config": {"message": "{{inptu.x}}"}}]})
    assert p["stage"] == "a" and p["field"] == "config.message" and "did you mean 'input'?" in p["message"]
    (p,) = refused(client, {"id": "s", "stages": [{"id": "v", "type": "schema-validate", "config": {"data": 1}}]})
    assert p["stage"] == "v" and p["field"] == "config.schema"
    (p,) = refused(client, {"id": "c", "stages": [{"id": "sub", "type": "subpipeline", "config": {"pipeline_id": "kid"}}]})
    assert p["stage"] == "sub" and p["field"] == "config.pipeline_id" and "kid" in p["message"]
    assert client.get("/pipelines").json()["items"] == []  # nothing was saved


def test_a_saved_child_and_a_default_make_it_valid_and_run(make_server):
    client = make_server()
    child = {"id": "kid", "stages": [{"id": "k", "type": "json-transform", "config": {"template": {"got": "{{input.x}}"}}}]}
    assert client.post("/pipelines", json=child).status_code == 201
    parent = {"id": "dad", "stages": [
        {"id": "sub", "type": "subpipeline", "config": {"pipeline_id": "kid", "input_data": {"x": "{{input.x}}"}}},
        {"id": "out", "type": "json-transform", "depends_on": ["sub"],
         "config": {"template": {"r": "{{upstream.sub.result.got}}", "d": "{{upstream.sub.nothing or 'dflt'}}"}}},
    ]}
    assert client.post("/pipelines", json=parent).status_code == 201, client.post("/pipelines/validate", json=parent).text
    run = client.post("/runs", json={"pipeline_id": "dad", "inputs": {"x": 5}}).json()
    result = wait_result(client, run["id"])
    assert result["output"] == {"r": 5, "d": "dflt"}, result


def test_a_field_missing_at_run_time_fails_the_run_naming_stage_and_field(make_server):
    client = make_server()
    # the child's output is open-ended, so only the run can tell
    child = {"id": "kid2", "stages": [{"id": "k", "type": "json-transform", "config": {"template": {"got": 1}}}]}
    assert client.post("/pipelines", json=child).status_code == 201
    parent = {"id": "dad2", "stages": [
        {"id": "sub", "type": "subpipeline", "config": {"pipeline_id": "kid2"}},
        {"id": "out", "type": "json-transform", "depends_on": ["sub"], "config": {"template": "{{upstream.sub.result.gto}}"}},
    ]}
    assert client.post("/pipelines", json=parent).status_code == 201
    run = client.post("/runs", json={"pipeline_id": "dad2", "inputs": {}}).json()
    result = wait_result(client, run["id"])
    assert result["status"] == "failed", result
    assert result["error"]["stage"] == "out" and "'gto'" in result["error"]["message"]
    assert "did you mean 'got'?" in result["error"]["hint"]


def test_an_abstract_base_is_saved_and_a_child_that_leaves_its_placeholder_is_refused(make_server):
    client = make_server()
    base = {"id": "base", "abstract": True, "stages": [
        {"id": "extract", "type": "json-transform", "config": {"template": {"rows": "{{input.rows}}"}}},
        {"id": "transform", "type": "abstract", "depends_on": ["extract"]},
    ]}
    assert client.post("/pipelines", json=base).status_code == 201
    (p,) = refused(client, {"id": "lazy", "extends": "base"})
    assert p["stage"] == "transform" and p["field"] == "component_type" and "abstract placeholder" in p["message"]
    child = {"id": "etl", "extends": "base", "overrides": {"transform": {
        "component_type": "json-transform", "config": {"template": {"n": "{{len(upstream.extract.rows)}}"}}}}}
    assert client.post("/pipelines", json=child).status_code == 201
    run = client.post("/runs", json={"pipeline_id": "etl", "inputs": {"rows": [1, 2, 3]}}).json()
    assert wait_result(client, run["id"])["output"] == {"n": 3}
