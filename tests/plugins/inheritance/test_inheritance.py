"""`extends` / `overrides` / `abstract` resolved the way the earlier product's files expect."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from flowmason.kernel.errors import PipelineLoadError
from flowmason.kernel.model import load_pipeline
from flowmason.kernel.runner import Loader
from flowmason.plugins.inheritance import resolve

BASE = {
    "id": "base", "name": "Base", "abstract": True,
    "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
    "stages": [
        {"id": "first", "component_type": "conditional", "config": {"condition": True, "pass_data": {"k": 1, "keep": "yes"}}},
        {"id": "second", "component_type": "return", "depends_on": ["first"], "config": {"condition": True, "return_value": "base"}},
    ],
}
CHILD = {
    "id": "child", "name": "Child", "extends": "base",
    "input_schema": {"properties": {"b": {"type": "integer"}}, "required": ["b"]},
    "overrides": {"first": {"config": {"pass_data": {"k": 2}}}},
    "stages": [{"id": "second", "component_type": "return", "depends_on": ["first"], "config": {"condition": True, "return_value": "{{upstream.first.data}}"}}],
}


def write(tmp_path, name, data):
    (tmp_path / f"{name}.pipeline.json").write_text(json.dumps(data))
    return tmp_path / f"{name}.pipeline.json"


def test_merge_rules(tmp_path):
    write(tmp_path, "base", BASE)
    child = load_pipeline(write(tmp_path, "child", CHILD))
    merged = resolve(child, Loader(tmp_path).raw)
    assert [s.id for s in merged.stages] == ["first", "second"]
    assert merged.stages[0].config["pass_data"] == {"k": 2, "keep": "yes"}
    assert merged.stages[1].config["return_value"] == "{{upstream.first.data}}"
    assert merged.input_schema["required"] == ["a", "b"] and set(merged.input_schema["properties"]) == {"a", "b"}
    assert merged.abstract is False and merged.extends is None and merged.id == "child"


def test_cycle_and_bad_override(tmp_path):
    write(tmp_path, "x", {"id": "x", "name": "x", "extends": "y", "stages": []})
    write(tmp_path, "y", {"id": "y", "name": "y", "extends": "x", "stages": []})
    with pytest.raises(PipelineLoadError, match="inheritance cycle"):
        resolve(load_pipeline(tmp_path / "x.pipeline.json"), Loader(tmp_path).raw)
    write(tmp_path, "base", BASE)
    bad = write(tmp_path, "bad", {**CHILD, "id": "bad", "overrides": {"ghost": {"config": {}}}})
    with pytest.raises(PipelineLoadError) as ei:
        resolve(load_pipeline(bad), Loader(tmp_path).raw)
    assert ei.value.field == "overrides.ghost"


def test_cli_runs_child_and_refuses_abstract(tmp_path):
    base = write(tmp_path, "base", BASE)
    child = write(tmp_path, "child", CHILD)
    fm = [sys.executable, "-m", "flowmason.kernel.cli"]
    res = subprocess.run(fm + ["run", str(child), "--input", '{"a": "x", "b": 1}', "-q"], capture_output=True, text=True, env=dict(os.environ))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"k": 2, "keep": "yes"}
    res = subprocess.run(fm + ["run", str(base), "--input", '{"a": "x"}', "-q"], capture_output=True, text=True, env=dict(os.environ))
    assert res.returncode != 0 and "abstract" in res.stderr
