"""The public Python API: `import flowmason` is cheap, and `flowmason.run` runs and records."""
from __future__ import annotations

import subprocess
import sys

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
