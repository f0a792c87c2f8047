"""One truthiness rule (kernel/truth.py) for every condition of control flow, end to end through `fm run` and the HTTP API."""
from __future__ import annotations

import json

import pytest

from tests.plugins.http_api.conftest import make_server, wait_result  # noqa: F401 - the shared API fixture
from tests.support.cli import fm

def stage(sid, ctype="json-transform", deps=(), **config):
    return {"id": sid, "component_type": ctype, "depends_on": list(deps), "config": config}


def conditional(**cond):
    return {"id": "cond", "name": "cond", "version": "1.0.0", "stages": [
        stage("cond", "conditional", true_branch_stages=["t"], false_branch_stages=["f"], **cond),
        stage("t", deps=["cond"], data="T"),
        stage("f", deps=["cond"], data="F"),
        stage("out", deps=["t", "f"], data="{{upstream.t.result or upstream.f.result}}"),
    ]}


def every_condition():
    """conditional (template and expression), return, break-loop, continue-loop and foreach's filter, one flag each."""
    return {"id": "all", "name": "all", "version": "1.0.0", "stages": [
        stage("cond", "conditional", condition="{{input.flag}}", true_branch_stages=["t"], false_branch_stages=["f"]),
        stage("t", deps=["cond"], data="T"),
        stage("f", deps=["cond"], data="F"),
        stage("expr", "conditional", condition_expression="input.flag"),
        stage("ret", "return", deps=["t", "f"], condition="{{input.stop}}", return_value="returned early"),
        stage("loop", "foreach", deps=["ret"], items=[1, 2, 3], loop_stages=["cont", "brk", "body"],
              filter_expression="'no' if item == 2 else 'yes'"),
        stage("cont", "continue-loop", condition="{{input.skip}}"),
        stage("brk", "break-loop", deps=["cont"], condition="{{input.halt}}"),
        stage("body", deps=["brk"], data="{{context.item}}"),
        stage("out", deps=["loop", "expr"], data={
            "branch": "{{upstream.t.result or upstream.f.result}}", "expr": "{{upstream.expr.branch_taken}}",
            "broken": "{{upstream.loop.broken}}", "bodies": "{{upstream.loop.results}}"}),
    ]}


def write(tmp_path, pipeline):
    path = tmp_path / f"{pipeline['id']}.pipeline.json"
    path.write_text(json.dumps(pipeline))
    return str(path)


@pytest.mark.parametrize("flag", ["false", "False", "0", "no", "off", ""])
def test_a_rendered_false_word_takes_the_false_branch_in_fm_run(tmp_path, monkeypatch, capsys, flag):
    monkeypatch.setenv("FM_STORE", f"sqlite:///{tmp_path / 'runs.db'}")
    inputs = {"flag": flag, "stop": flag, "skip": flag, "halt": flag}
    code, out, err = fm(capsys, "run", "-q", write(tmp_path, every_condition()), "--input", json.dumps(inputs))
    assert code == 0, err
    result = json.loads(out)["result"]
    # no branch, return or break was taken; the filter dropped item 2; continue-loop let every body run
    assert result["branch"] == "F" and result["expr"] == "false" and result["broken"] is False
    assert [b["result"] for b in result["bodies"]] == [1, 3]


def test_true_words_take_the_true_paths_in_fm_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FM_STORE", f"sqlite:///{tmp_path / 'runs.db'}")
    path = write(tmp_path, every_condition())
    code, out, err = fm(capsys, "run", "-q", path, "--input", json.dumps({"flag": "yes", "stop": "no", "skip": "0", "halt": "On"}))
    assert code == 0, err
    result = json.loads(out)["result"]
    assert result["branch"] == "T" and result["expr"] == "true"
    assert result["broken"] is True and result["bodies"] == [None]  # broke at the first item, before its body
    code, out, err = fm(capsys, "run", "-q", path, "--input", json.dumps({"flag": "1", "stop": "TRUE", "skip": "", "halt": ""}))
    assert code == 0, err
    assert out.strip() == "returned early"
    code, out, err = fm(capsys, "run", "-q", path, "--input", json.dumps({"flag": "", "stop": "off", "skip": "yes", "halt": ""}))
    assert code == 0, err
    assert json.loads(out)["result"]["bodies"] == [None, None]  # continue-loop skipped each body


def test_words_written_in_the_file_and_bare_expressions_still_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FM_STORE", f"sqlite:///{tmp_path / 'runs.db'}")
    for condition, branch in (("off", "F"), (" Yes ", "T"), ("input.n > 3", "T"), ("input.n > 30", "F")):
        pipeline = {**conditional(condition=condition), "id": "lit"}
        code, out, err = fm(capsys, "run", "-q", write(tmp_path, pipeline), "--input", '{"n": 5}')
        assert code == 0, err
        assert json.loads(out)["result"] == branch, condition


def test_the_same_rule_through_the_http_api(make_server):  # noqa: F811 - the fixture imported above
    client = make_server()
    for flag, branch in (("false", "F"), ("0", "F"), ("Off", "F"), ("true", "T")):
        r = client.post("/runs", json={"pipeline": conditional(condition="{{input.flag}}"), "inputs": {"flag": flag}})
        assert r.status_code == 202, r.text
        body = wait_result(client, r.json()["id"])
        assert body["status"] == "completed", body
        assert body["output"]["result"] == branch, flag
