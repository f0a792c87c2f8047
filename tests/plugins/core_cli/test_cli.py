"""`fm` end to end in real subprocesses: run, progress, runs list/show, validate, schema, Ctrl-C, bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


FM = [sys.executable, "-m", "flowmason.kernel.cli"]


def fm(args, env_extra=None, timeout=60):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run(FM + args, capture_output=True, text=True, env=env, timeout=timeout)


def write(tmp_path, name, data):
    f = tmp_path / name
    f.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return f


BRANCHY = {
    "id": "branchy", "name": "Branchy", "version": "1.2.0",
    "input_schema": {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}}},
    "stages": [
        {"id": "route", "component_type": "router", "config": {"value": "{{input.kind}}", "routes": {"early": ["stop"]}, "default_route": ["go"]}},
        {"id": "stop", "component_type": "return", "depends_on": ["route"], "config": {"condition": True, "return_value": {"early": "{{input.kind}}"}}},
        {"id": "go", "component_type": "conditional", "depends_on": ["route"], "config": {"condition": "{{input.kind == 'yes'}}"}},
    ],
}


def test_run_prints_output_and_records(tmp_path):
    p = write(tmp_path, "b.pipeline.json", BRANCHY)
    res = fm(["run", str(p), "--input", '{"kind": "early"}'])
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"early": "early"}
    # plain progress on a pipe: one line per stage
    assert "ok        route" in res.stderr and "skipped   go" in res.stderr
    runs = json.loads(fm(["runs", "--json"]).stdout)
    assert len(runs) == 1 and runs[0]["status"] == "completed" and runs[0]["pipeline_id"] == "branchy"
    show = fm(["runs", "show", runs[0]["id"][:20]])
    assert show.returncode == 0
    assert "completed  route" in show.stdout and "input:" in show.stdout and "output:" in show.stdout
    # the graph: dependency order, indented by depth, status and timing per stage
    graph = show.stdout.split("graph\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert graph[0].split()[:3] == ["✓", "route", "completed"]
    assert any(line.split()[:3] == ["·", "go", "skipped"] and line.rstrip().endswith("← route") for line in graph)
    detail = json.loads(fm(["runs", "show", runs[0]["id"], "--json"]).stdout)
    by_id = {s["stage_id"]: s for s in detail["stages"]}
    assert by_id["go"]["status"] == "skipped" and by_id["route"]["duration_ms"] >= 0
    assert by_id["route"]["input"]["value"] == "early"


def test_missing_input_fails_and_is_recorded(tmp_path):
    p = write(tmp_path, "b.pipeline.json", BRANCHY)
    res = fm(["run", str(p), "--input", "{}"])
    assert res.returncode == 2
    assert "missing required field(s): kind" in res.stderr and "pipeline 'branchy'" in res.stderr
    runs = json.loads(fm(["runs", "--json"]).stdout)
    assert runs[0]["status"] == "failed"


def test_malformed_input_json(tmp_path):
    p = write(tmp_path, "b.pipeline.json", BRANCHY)
    res = fm(["run", str(p), "--input", "{kind: 1"])
    assert res.returncode == 2 and "not valid JSON" in res.stderr


def test_malformed_pipeline_changes_nothing(tmp_path):
    p = write(tmp_path, "bad.pipeline.json", '{"name": "x", "stages": [}')
    res = fm(["run", str(p)])
    assert res.returncode != 0 and "malformed JSON at line 1" in res.stderr
    assert "Traceback" not in res.stderr
    assert json.loads(fm(["runs", "--json"]).stdout) == []


def test_unknown_component_is_reported_and_run_recorded_failed(tmp_path):
    p = write(tmp_path, "u.pipeline.json", {"name": "u", "stages": [{"id": "a", "component_type": "routr"}]})
    res = fm(["run", str(p)])
    assert res.returncode == 2
    assert "stage 'a', field 'component_type': unknown component type 'routr'" in res.stderr
    assert "did you mean 'router'" in res.stderr
    runs = json.loads(fm(["runs", "--json"]).stdout)
    assert runs[0]["status"] == "failed"


def test_validate_reports_every_problem(tmp_path):
    good = write(tmp_path, "good.pipeline.json", BRANCHY)
    bad = write(tmp_path, "bad.pipeline.json", {"name": "bad", "stages": [
        {"id": "a", "component_type": "router", "depends_on": ["b"], "config": {"routes": {}}},
        {"id": "b", "component_type": "conditional", "depends_on": ["a"]},
        {"id": "c", "component_type": "nope"}]})
    res = fm(["validate", str(good), str(bad)])
    assert res.returncode == 2
    assert f"ok      {good}" in res.stdout and f"INVALID {bad}" in res.stdout
    assert "dependency cycle" in res.stdout and "unknown component type 'nope'" in res.stdout
    assert fm(["validate", str(good)]).returncode == 0


def test_schema_export(tmp_path):
    out = tmp_path / "schema.json"
    assert fm(["schema", "-o", str(out)]).returncode == 0
    schema = json.loads(out.read_text())
    assert "stages" in schema["properties"] and "foreach" in schema["$defs"]["Stage"]["properties"]["component_type"]["examples"]
    comp = json.loads(fm(["schema", "--component", "foreach", "--json"]).stdout)
    assert "loop_stages" in comp["config_schema"]["required"]


def test_store_flag_points_elsewhere(tmp_path):
    p = write(tmp_path, "b.pipeline.json", BRANCHY)
    db = tmp_path / "elsewhere.db"
    assert fm(["--store", str(db), "run", str(p), "--input", '{"kind": "x"}', "-q"]).returncode == 0
    assert db.exists()
    assert len(json.loads(fm(["--store", str(db), "runs", "--json"]).stdout)) == 1
    assert json.loads(fm(["runs", "--json"]).stdout) == []


def test_unknown_run_id(tmp_path):
    res = fm(["runs", "show", "run_nope"])
    assert res.returncode == 3 and "no run with id 'run_nope'" in res.stderr


def test_ctrl_c_cancels_cleanly_and_records(tmp_path, installed_plugin):
    p = write(tmp_path, "n.pipeline.json", {"name": "napper", "stages": [{"id": "zz", "type": "nap", "config": {"seconds": 30}}]})
    env = dict(os.environ, PYTHONPATH=str(installed_plugin))
    proc = subprocess.Popen(FM + ["run", str(p)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        line = ""
        while time.time() < deadline and "started" not in line:
            line = proc.stderr.readline()
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "cancelled" in err and "Traceback" not in err
    runs = json.loads(fm(["runs", "--json"], {"PYTHONPATH": str(installed_plugin)}).stdout)
    assert runs[0]["status"] == "cancelled"
