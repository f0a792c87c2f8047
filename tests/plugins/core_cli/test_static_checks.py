"""`fm validate` finds statically what `fm run` refuses, and `fm run` refuses a missing output field,
in real subprocesses with a real SQLite store in tmp_path."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FM = [sys.executable, "-m", "flowmason.kernel.cli"]


def fm(tmp_path: Path, *args: str, cwd: Path | None = None):
    env = {**os.environ, "FM_STORE": str(tmp_path / "store.db")}
    return subprocess.run(FM + list(args), capture_output=True, text=True, env=env, timeout=60, cwd=cwd)


def write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def stage(sid, ctype, deps=(), **config):
    return {"id": sid, "component_type": ctype, "depends_on": list(deps), "config": config}


def test_a_field_the_stage_does_not_produce_is_refused_by_validate_and_run(tmp_path):
    p = write(tmp_path, "f.pipeline.json", {"id": "f", "stages": [
        stage("a", "json-transform", template={"value": "{{input.x}}"}),
        stage("b", "text-template", ["a"], template="{{upstream.a.vaule}}"),
    ]})
    res = fm(tmp_path, "validate", str(p))
    assert res.returncode == 2
    assert "stage 'b', field 'config.template'" in res.stdout and "no output field 'vaule'" in res.stdout
    assert "did you mean 'value'?" in res.stdout
    res = fm(tmp_path, "run", str(p), "-i", '{"x": 1}', "-q")
    assert res.returncode == 2 and "did you mean 'value'?" in res.stderr
    # with a default it runs and gives the default
    p.write_text(json.dumps({"id": "f", "stages": [
        stage("a", "json-transform", template={"value": "{{input.x}}"}),
        stage("b", "json-transform", ["a"], template={"v": "{{upstream.a.value}}", "d": "{{upstream.a.vaule or 'default'}}"}),
    ]}))
    assert fm(tmp_path, "validate", str(p)).returncode == 0
    res = fm(tmp_path, "run", str(p), "-i", '{"x": 1}', "-q")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"v": 1, "d": "default"}


def test_a_field_missing_from_open_output_fails_the_run_not_null(tmp_path):
    # merge's output is open-ended: only the run can tell, and it says which stage and field
    p = write(tmp_path, "m.pipeline.json", {"id": "m", "stages": [
        stage("a", "merge", sources=[{"value": 1}]),
        stage("b", "json-transform", ["a"], template={"v": "{{upstream.a.vaule}}"}),
    ]})
    assert fm(tmp_path, "validate", str(p)).returncode == 0
    res = fm(tmp_path, "run", str(p), "-q")
    assert res.returncode == 1
    assert "stage 'b'" in res.stderr and "'vaule'" in res.stderr and "did you mean 'value'?" in res.stderr
    runs = fm(tmp_path, "runs", "--json")
    assert runs.returncode == 0 and json.loads(runs.stdout)[0]["status"] == "failed"


def test_unknown_root_is_found_by_validate(tmp_path):
    for text in ("{{inptu.x}}", "{{inptu.x or 'd'}}"):
        p = write(tmp_path, "r.pipeline.json", {"id": "r", "stages": [stage("a", "logger", message=text)]})
        res = fm(tmp_path, "validate", str(p))
        assert res.returncode == 2, res.stdout
        assert "stage 'a', field 'config.message'" in res.stdout
        assert "unknown name 'inptu'" in res.stdout and "did you mean 'input'?" in res.stdout


def test_required_config_with_an_alias_is_checked(tmp_path):
    p = write(tmp_path, "s.pipeline.json", {"id": "s", "stages": [stage("v", "schema-validate", data={"a": 1})]})
    res = fm(tmp_path, "validate", str(p))
    assert res.returncode == 2 and "stage 'v', field 'config.schema'" in res.stdout
    assert "'schema' or 'json_schema'" in res.stdout
    p = write(tmp_path, "s.pipeline.json", {"id": "s", "stages": [stage("v", "schema-validate", data={"a": 1},
                                                                          json_schema={"type": "object"})]})
    assert fm(tmp_path, "validate", str(p)).returncode == 0


def test_a_missing_subpipeline_child_is_found_without_running(tmp_path):
    parent = {"id": "dad", "stages": [stage("sub", "subpipeline", pipeline_id="kid", input_data={"x": "{{input.x}}"})]}
    p = write(tmp_path, "dad.pipeline.json", parent)
    res = fm(tmp_path, "validate", str(p))
    assert res.returncode == 2
    assert "stage 'sub', field 'config.pipeline_id'" in res.stdout and "cannot find pipeline 'kid'" in res.stdout
    # a child that exists but is itself invalid is reported too, from another folder (resolved beside the parent)
    write(tmp_path, "kid.pipeline.json", {"id": "kid", "stages": [stage("k", "logger", message="{{inptu.x}}")]})
    res = fm(tmp_path, "validate", str(p), cwd=Path("/"))
    assert res.returncode == 2 and "sub-pipeline 'kid' is invalid" in res.stdout and "inptu" in res.stdout
    write(tmp_path, "kid.pipeline.json", {"id": "kid", "stages": [
        stage("k", "json-transform", template={"doubled": "{{input.x * 2}}"})]})
    res = fm(tmp_path, "validate", str(p), cwd=Path("/"))
    assert res.returncode == 0, res.stdout
    assert json.loads(fm(tmp_path, "runs", "--json").stdout) == []  # validating ran nothing
    res = fm(tmp_path, "run", str(p), "-i", '{"x": 21}', "-q")
    assert res.returncode == 0 and json.loads(res.stdout)["result"] == {"doubled": 42}, res.stderr


def test_an_abstract_base_validates_as_abstract_and_its_child_must_fill_it(tmp_path):
    base = {"id": "base-etl", "abstract": True, "stages": [
        stage("extract", "json-transform", template={"rows": "{{input.rows}}"}),
        {"id": "transform", "component_type": "abstract", "depends_on": ["extract"]},
        stage("validate", "schema-validate", ["transform"], data="{{upstream.transform}}"),
    ]}
    write(tmp_path, "base-etl.pipeline.json", base)
    res = fm(tmp_path, "validate", str(tmp_path / "base-etl.pipeline.json"))
    assert res.returncode == 0, res.stdout
    assert "abstract base" in res.stdout and "unknown component" not in res.stdout
    assert "stage 'transform'" in res.stdout and "stage 'validate'" in res.stdout  # as warnings
    # a child that does not fill the placeholder: told so, not "unknown component type 'abstract'"
    write(tmp_path, "lazy.pipeline.json", {"id": "lazy", "extends": "base-etl"})
    res = fm(tmp_path, "validate", str(tmp_path / "lazy.pipeline.json"))
    assert res.returncode == 2 and "abstract placeholder" in res.stdout and "unknown component" not in res.stdout
    write(tmp_path, "etl.pipeline.json", {"id": "etl", "extends": "base-etl", "overrides": {
        "transform": {"component_type": "json-transform", "config": {"template": {"n": "{{len(upstream.extract.rows)}}"}}},
        "validate": {"config": {"schema": {"type": "object", "required": ["n"]}}}}})
    assert fm(tmp_path, "validate", str(tmp_path / "etl.pipeline.json")).returncode == 0
    res = fm(tmp_path, "run", str(tmp_path / "etl.pipeline.json"), "-i", '{"rows": [1, 2]}', "-q")
    assert res.returncode == 0 and json.loads(res.stdout)["valid"] is True, res.stderr
    res = fm(tmp_path, "run", str(tmp_path / "base-etl.pipeline.json"), "-q")
    assert res.returncode == 1 and "abstract" in res.stderr
