"""`fm run` / `fm validate` in real subprocesses on the earlier product's forms, misspelt keys and undecodable files.

Runs are recorded in a SQLite store in tmp_path (``FM_STORE``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

FM = [sys.executable, "-m", "flowmason.kernel.cli"]


@pytest.fixture
def fm(tmp_path):
    env = {**os.environ, "FM_STORE": f"sqlite:///{tmp_path / 'runs.db'}"}

    def call(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(FM + list(args), capture_output=True, text=True, env=env, timeout=60)

    return call


def _write(tmp_path, name, doc) -> str:
    f = tmp_path / name
    if isinstance(doc, bytes):
        f.write_bytes(doc)
    else:
        f.write_text(json.dumps(doc))
    return str(f)


EARLIER = {
    "id": "earlier", "name": "earlier",
    "input_schema": {"type": "object", "required": ["who"], "properties": {"who": {"type": "string"}}},
    "stages": [
        {"id": "a", "component": "json-transform", "config": {"template": {"v": "{{input.who}}", "n": 2}}},
        {"id": "fetch-data", "component": "json-transform", "config": {"template": {"body": {"k": "K"}}}},
        {"id": "b", "component": "json-transform", "depends_on": ["a", "fetch-data"], "config": {"template": {
            "stages": "{{stages.a.output.v}}", "bare": "{{a.output.n}}", "upstream": "{{upstream.a.output.v}}",
            "plain": "{{upstream.a.v}}", "whole": "{{stages.a.output}}", "hyphen": "{{fetch-data.output.body.k}}",
            "text": "hi {{a.output.v}}"}}},
    ],
    "output_stage_id": "b",
    "sample_input": {"who": "sample"},
    "example_input": {"who": "example"},
}


def test_component_key_earlier_references_and_sample_input(fm, tmp_path):
    f = _write(tmp_path, "earlier.pipeline.json", EARLIER)
    assert fm("validate", f).returncode == 0
    res = fm("run", "-q", f)
    assert res.returncode == 0, res.stderr
    assert """no --input given: using the pipeline's sample_input {"who": "sample"}""" in res.stderr
    assert json.loads(res.stdout) == {"stages": "sample", "bare": 2, "upstream": "sample", "plain": "sample",
                                      "whole": {"v": "sample", "n": 2}, "hyphen": "K", "text": "hi sample"}
    # an explicit --input wins, and nothing is said; example_input is the fallback when there is no sample_input
    res = fm("run", "-q", f, "--input", '{"who": "given"}')
    assert json.loads(res.stdout)["stages"] == "given" and "using the pipeline's" not in res.stderr
    f2 = _write(tmp_path, "example.pipeline.json", {**EARLIER, "sample_input": None})
    res = fm("run", "-q", f2)
    assert json.loads(res.stdout)["plain"] == "example" and "using the pipeline's example_input" in res.stderr
    from flowmason.kernel.runs import RunRepository
    from flowmason.kernel.storage import open_store

    ids = [r["id"] for r in json.loads(fm("runs", "--json").stdout)]
    with open_store(f"sqlite:///{tmp_path / 'runs.db'}") as store:
        recorded = sorted(RunRepository(store).get_run(i).inputs["who"] for i in ids)
    assert recorded == ["example", "given", "sample"]


def test_validate_reports_earlier_references_and_misspelt_keys_with_did_you_mean(fm, tmp_path):
    doc = {"id": "typos", "stages": [
        {"id": "a", "component": "json-transform", "config": {"data": 1}},
        {"id": "b", "type": "json-transform", "depend_on": ["a"], "config": {"data": "{{a.output.v}}"}},
        {"id": "c", "type": "json-transform", "depends_on": ["a"], "retry_config": {"max_retry": 3},
         "config": {"data": "{{stages.nope.output}}"}},
        {"id": "d", "type": "conditional", "depends_on": ["a"], "config": {"condtion": True}},
    ]}
    f = _write(tmp_path, "typos.pipeline.json", doc)
    res = fm("validate", "--json", f)
    assert res.returncode == 2
    found = {(p["stage"], p["field"]): (p["message"], p["hint"]) for p in json.loads(res.stdout)[0]["problems"]}
    assert found[("b", "depend_on")] == ("unknown stage key 'depend_on'", "did you mean 'depends_on'?")
    assert found[("c", "retry_config.max_retry")][1] == "did you mean 'max_retries'?"
    assert found[("d", "config.condtion")][1] == "did you mean 'condition'?"
    assert found[("b", "depends_on")][0] == "references 'upstream.a' but does not depend on it"
    assert found[("c", "config")][0] == "references unknown stage 'upstream.nope'"
    # fm run refuses it before any stage runs: before, `depend_on` ran b before a
    res = fm("run", f)
    assert res.returncode == 2 and "did you mean 'depends_on'?" in res.stderr and "ok        " not in res.stderr


def test_undecodable_files_are_clear_errors_and_a_bom_is_read(fm, tmp_path):
    bom = _write(tmp_path, "bom.pipeline.json", b"\xef\xbb\xbf" + json.dumps(EARLIER).encode())
    utf16 = _write(tmp_path, "utf16.pipeline.json", json.dumps(EARLIER).encode("utf-16"))
    latin1 = _write(tmp_path, "latin1.pipeline.json", json.dumps({"name": "café", "stages": []}, ensure_ascii=False).encode("latin-1"))
    garbage = _write(tmp_path, "garbage.pipeline.json", b"\xff\xfe\x00garbage\x80")
    res = fm("validate", bom, utf16, latin1, garbage)
    assert res.returncode == 2 and "Traceback" not in res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("ok      ") and lines[1].startswith("ok      ")
    assert f"pipeline file {latin1} is not UTF-8 text: byte 0xe9 at offset" in res.stdout
    assert f"pipeline file {garbage} is not UTF-16-LE text" in res.stdout
    assert "save the file as UTF-8" in res.stdout
    assert fm("run", "-q", bom).returncode == 0
    res = fm("run", "-q", latin1)
    assert res.returncode == 2 and "is not UTF-8 text" in res.stderr and "Traceback" not in res.stderr
    res = fm("run", "-q", bom, "--input-file", latin1)
    assert res.returncode == 2 and f"input file {latin1} is not UTF-8 text" in res.stderr
    assert "Traceback" not in res.stderr
