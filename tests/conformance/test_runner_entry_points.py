"""One runner: a pipeline with `extends` and a sub-pipeline gives the same output through every entry point.

(The Lambda API → SQS → worker path runs the same fixture in tests/functions/test_worker_stack.py.)

The fixture is three files: ``base`` (two stages), ``child`` (extends base,
overrides one stage, adds a sub-pipeline stage that runs ``sub``), and
``sub``. Every way of starting a run must resolve them the same way.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.http_api.conftest import make_server, wait_result  # noqa: F401 - the fixture

BASE = {
    "id": "base", "name": "base", "stages": [
        {"id": "first", "component_type": "json-transform",
         "config": {"data": "{{input}}", "template": {"who": "{{data.name}}", "n": 1}}},
        {"id": "second", "component_type": "json-transform", "depends_on": ["first"],
         "config": {"data": "{{upstream.first}}", "template": {"text": "hello {{data.who}}"}}},
    ],
}
SUB = {
    "id": "sub", "name": "sub", "stages": [
        {"id": "shout", "component_type": "json-transform",
         "config": {"data": "{{input}}", "template": {"loud": "{{data.text.upper()}}"}}},
    ],
}
CHILD = {
    "id": "child", "name": "child", "extends": "base",
    "overrides": {"first": {"config": {"template": {"who": "{{data.name}}", "n": 2}}}},
    "output_stage_id": "call-sub",
    "stages": [
        {"id": "call-sub", "component_type": "subpipeline", "depends_on": ["second"],
         "config": {"pipeline_id": "sub", "input_data": {"text": "{{upstream.second.text}}"}}},
    ],
}
INPUTS = {"name": "ada"}
EXPECTED = {"pipeline_id": "sub", "status": "completed", "result": {"loud": "HELLO ADA"}, "error": None}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for doc in (BASE, SUB, CHILD):
        (tmp_path / f"{doc['id']}.pipeline.json").write_text(json.dumps(doc))
    return tmp_path


def test_fm_run(files):
    env = {**os.environ, "FM_STORE": str(files / "cli.db")}
    out = subprocess.run([sys.executable, "-m", "flowmason.kernel.cli", "run", str(files / "child.pipeline.json"),
                          "--input", json.dumps(INPUTS), "--quiet"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == EXPECTED


def test_python_api(files):
    import flowmason

    run = flowmason.run(files / "child.pipeline.json", INPUTS)
    assert run.output == EXPECTED
    run = flowmason.run(str(files / "child.pipeline.json"), INPUTS, record=True, store=str(files / "sdk.db"))
    assert run.output == EXPECTED


def test_runner_with_a_stored_base(tmp_path):
    # references resolve from the tenant's saved pipelines when there is no file
    from flowmason.plugins.loaders import PipelineRepository
    from flowmason.kernel.runner import Runner
    from flowmason.kernel.storage import open_store

    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    repo = PipelineRepository(store)
    repo.create(BASE)
    repo.create(SUB)
    run = Runner(store=store, files=False).run_sync(CHILD, INPUTS)
    assert run.output == EXPECTED
    run = Runner(store=store, files=False).run_sync("store://base@1", INPUTS)
    assert run.output == {"text": "hello ada"}


def test_http_api(make_server):  # noqa: F811 - pytest fixture imported above
    client = make_server()
    for doc in (BASE, SUB):
        assert client.post("/pipelines", json=doc).status_code == 201
    assert client.post("/pipelines/validate", json=CHILD).json()["valid"] is True
    created = client.post("/pipelines", json=CHILD)
    assert created.status_code == 201, created.text
    started = client.post("/runs", json={"pipeline_id": "child", "inputs": INPUTS})
    assert started.status_code == 202, started.text
    result = wait_result(client, started.json()["id"])
    assert result["status"] == "completed", result
    assert result["output"] == EXPECTED


def test_fm_test(files):
    (files / "child.test.json").write_text(json.dumps({
        "name": "child", "pipeline": "child.pipeline.json",
        "tests": [{"name": "resolves", "input": INPUTS,
                   "assertions": [{"path": "result.loud", "type": "equals", "value": "HELLO ADA"}]}],
    }))
    env = {**os.environ, "FM_STORE": str(files / "t.db")}
    out = subprocess.run([sys.executable, "-m", "flowmason.kernel.cli", "test", str(files / "child.test.json")],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_replay(files, tmp_path):
    from flowmason.kernel.runner import Runner
    from flowmason.kernel.runs import RunRepository
    from flowmason.kernel.storage import open_store
    from flowmason.plugins.timetravel.replay import replay

    repo = RunRepository(open_store(f"sqlite:///{tmp_path / 'r.db'}"))
    runner = Runner(recorder=repo)
    pipeline, loader = runner.load(files / "child.pipeline.json")
    first = asyncio.run(runner.run(pipeline, INPUTS, loader=loader))
    assert first.output == EXPECTED
    _, again = replay(repo, first.id, 1, current=pipeline, loader=loader)
    assert again.status.value == "completed"
    assert again.output == EXPECTED


def test_cli_and_api_runs_share_one_namespace(make_server, files, tmp_path):  # noqa: F811
    # on a laptop the user is the default organization: `fm run` and `fm serve` on one store see each other's runs
    client = make_server()
    env = {**os.environ, "FM_STORE": str(tmp_path / "api.db")}
    fm = [sys.executable, "-m", "flowmason.kernel.cli"]
    out = subprocess.run(fm + ["run", str(files / "sub.pipeline.json"), "--input", '{"text": "x"}', "--json", "-q"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    cli_run = json.loads(out.stdout)["id"]
    listed = client.get("/runs").json()["items"]
    assert cli_run in [r["id"] for r in listed]
    assert client.get(f"/runs/{cli_run}/result").json()["output"] == {"loud": "X"}
    started = client.post("/runs", json={"pipeline": SUB, "inputs": {"text": "y"}})
    api_run = started.json()["id"]
    wait_result(client, api_run)
    shown = subprocess.run(fm + ["runs", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert {cli_run, api_run} <= {r["id"] for r in json.loads(shown.stdout)}
