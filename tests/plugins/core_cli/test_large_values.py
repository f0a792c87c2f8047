"""`fm run` with values over the item limit, end to end in subprocesses: SQLite file, and DynamoDB + S3 (moto server).

What a user sees: the run's output, `fm runs show --json` and `fm export`
give every value whole; with no blob store for a large value the run
fails with a clear error instead of completing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

FM = [sys.executable, "-m", "flowmason.kernel.cli"]
BIG = "x" * 600_000

PIPELINE = {"id": "big", "name": "big", "stages": [
    {"id": "make", "type": "json-transform", "config": {"data": "{{input}}", "template": {"body": "{{data.big}}"}}},
    {"id": "measure", "type": "json-transform", "depends_on": ["make"],
     "config": {"template": {"n": "{{len(upstream.make.body)}}", "body": "{{upstream.make.body}}"}}},
]}


@pytest.fixture(scope="module")
def moto_endpoint():
    pytest.importorskip("moto")
    from tests.support.dynamodb import local_dynamodb

    with local_dynamodb() as endpoint:
        yield endpoint


def fm(args, store, timeout=120, **extra):
    env = {**os.environ, "FM_STORE": store, "FM_HOME": extra.pop("home"), **extra}
    return subprocess.run(FM + args, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    from tests.support.dynamodb import dynamodb_url

    return dynamodb_url(request.getfixturevalue("moto_endpoint"))


def run_big(store, tmp_path):
    """`fm run` of PIPELINE with a 600 KB input; returns (the process, the FM_HOME it used)."""
    path = tmp_path / "big.pipeline.json"
    path.write_text(json.dumps(PIPELINE))
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"big": BIG}))
    home = str(tmp_path / "home")
    return fm(["run", str(path), "--input-file", str(inputs), "-q"], store, home=home), home


def test_fm_run_keeps_a_600_kb_output_whole_in_history_show_and_export(store, tmp_path):
    ran, home = run_big(store, tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"n": 600_000, "body": BIG}

    (summary,) = json.loads(fm(["runs", "--json"], store, home=home).stdout)
    shown = fm(["runs", "show", "--json", summary["id"]], store, home=home)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["run"]["status"] == "completed"
    assert record["run"]["inputs"] == {"big": BIG} and record["run"]["output"] == {"n": 600_000, "body": BIG}
    by_id = {s["stage_id"]: s for s in record["stages"]}
    assert by_id["make"]["output"] == {"body": BIG} and by_id["measure"]["output"]["n"] == 600_000
    assert "__truncated__" not in shown.stdout

    exported = fm(["export", summary["id"], "--format", "json"], store, home=home)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.count(BIG) >= 2 and "__truncated__" not in exported.stdout


def test_with_no_blob_store_large_inputs_are_refused_with_a_clear_error(moto_endpoint, tmp_path):
    from tests.support.dynamodb import dynamodb_url

    ran, _ = run_big(dynamodb_url(moto_endpoint, blobs=False), tmp_path)
    assert ran.returncode != 0 and not ran.stdout
    assert "field 'inputs'" in ran.stderr and "no blob store" in ran.stderr and "FM_BLOB_BUCKET" in ran.stderr
    assert "Traceback" not in ran.stderr
