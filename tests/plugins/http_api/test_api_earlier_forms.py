"""The HTTP API on the earlier product's forms, misspelt keys and undecodable bodies (uvicorn on 127.0.0.1, SQLite store)."""
from __future__ import annotations

import json

from tests.plugins.core_cli.test_cli_earlier_forms import EARLIER

from .conftest import wait_result


def test_component_key_and_earlier_references_run_through_the_api(make_server):
    client = make_server()
    r = client.post("/pipelines", json=EARLIER)
    assert r.status_code == 201, r.text
    run = client.post("/runs", json={"pipeline_id": "earlier", "inputs": {"who": "api"}}).json()
    result = wait_result(client, run["id"])
    assert result["status"] == "completed", result["error"]
    assert result["output"] == {"stages": "api", "bare": 2, "upstream": "api", "plain": "api",
                                "whole": {"v": "api", "n": 2}, "hyphen": "K", "text": "hi api"}


def test_the_api_runs_with_the_inputs_it_is_sent_not_the_files_sample(make_server):
    # a client says what it runs on; sample_input is for `fm run` and flowmason.run() (README)
    client = make_server()
    run = client.post("/runs", json={"pipeline": EARLIER}).json()
    result = wait_result(client, run["id"])
    assert result["status"] == "failed" and "missing required field(s): who" in result["error"]["message"]


def test_misspelt_keys_and_unknown_earlier_references_are_refused_with_did_you_mean(make_server):
    client = make_server()
    typo = {"id": "typo", "stages": [
        {"id": "a", "component": "json-transform", "config": {"data": 1}},
        {"id": "b", "type": "json-transform", "depend_on": ["a"], "retry_config": {"max_retry": 2},
         "config": {"data": "{{stages.a.output}}"}},
        {"id": "c", "type": "foreach", "depends_on": ["a"], "config": {"items": [], "loop_stages": ["d"], "paralel": True}},
        {"id": "d", "type": "json-transform", "config": {"data": "{{nope.output.x}}"}},
    ]}
    out = client.post("/pipelines/validate", json=typo).json()
    assert out["valid"] is False
    hints = {(p["stage"], p["field"]): p["hint"] for p in out["problems"]}
    assert hints[("b", "depend_on")] == "did you mean 'depends_on'?"
    assert hints[("b", "retry_config.max_retry")] == "did you mean 'max_retries'?"
    assert hints[("c", "config.paralel")] == "did you mean 'parallel'?"
    assert hints[("b", "depends_on")] == "add 'a' to depends_on"  # {{stages.a.output}} is checked like upstream.a
    assert ("d", "config") in hints  # {{nope.output.x}}: no stage 'nope'
    r = client.post("/pipelines", json=typo)
    assert r.status_code == 422 and r.json()["error"]["code"] == "pipeline_invalid"
    r = client.post("/runs", json={"pipeline": typo})
    assert r.status_code == 422 and client.get("/runs").json()["items"] == []


def test_a_body_with_a_bom_is_read_and_undecodable_bytes_are_a_clear_400(make_server):
    client = make_server()
    body = json.dumps({"pipeline": EARLIER, "inputs": {"who": "bom"}}).encode()
    r = client.post("/runs", content=b"\xef\xbb\xbf" + body, headers={"Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    assert wait_result(client, r.json()["id"])["output"]["plain"] == "bom"
    r = client.post("/pipelines", content=b'{"name": "caf\xe9", "stages": []}', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "bad_json" and "can't decode byte 0xe9" in error["message"]
