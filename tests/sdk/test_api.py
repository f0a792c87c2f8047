"""The public Python API: `import flowmason` is cheap, and `flowmason.run` runs and records."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest

import flowmason


def test_run_dict_and_record(tmp_path):
    pipeline = {"name": "api", "stages": [
        {"id": "r", "component_type": "return", "config": {"condition": True, "return_value": "{{input.v * 2}}"}}]}
    run = flowmason.run(pipeline, {"v": 21}, record=True, store=f"sqlite:///{tmp_path / 's.db'}")
    assert run.status.value == "completed" and run.output == 42
    repo = flowmason.RunRepository(flowmason.open_store(f"sqlite:///{tmp_path / 's.db'}"))
    assert repo.get_run(run.id).output == 42


def test_plugin_author_names_are_exported():
    for name in ("hookimpl", "operator", "node", "control_flow", "component", "StageContext", "Pipeline"):
        assert getattr(flowmason, name) is not None


def test_import_is_lazy():
    out = subprocess.run([sys.executable, "-c", "import sys, flowmason; print('pydantic' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_run_with_no_inputs_uses_the_files_sample_input_and_warns(tmp_path):
    doc = {"name": "sample", "input_schema": {"type": "object", "required": ["v"]},
           "stages": [{"id": "r", "component": "return", "config": {"condition": True, "return_value": "{{input.v}}"}}],
           "sample_input": {"v": "from the file"}}
    f = tmp_path / "sample.pipeline.json"
    f.write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match="using the pipeline's sample_input"):
        assert flowmason.run(f).output == "from the file"
    with pytest.warns(UserWarning, match="example_input"):
        assert flowmason.run({**doc, "sample_input": None, "example_input": {"v": 2}}).output == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert flowmason.run(f, {"v": "given"}).output == "given"
