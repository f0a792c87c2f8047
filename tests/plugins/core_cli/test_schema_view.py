"""`fm schema --component NAME`: config and output fields with descriptions, for every built-in component."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flowmason.kernel import plugins
from flowmason.kernel.outputs import fields

FM = [sys.executable, "-m", "flowmason.kernel.cli"]


def test_every_builtin_component_declares_its_config_and_output_with_descriptions():
    plugins.reset()
    comps = plugins.get_registry().components
    assert len(comps) >= 26
    undeclared, undescribed = [], []
    for name, comp in comps.items():
        schema = comp.output_schema
        if not isinstance(schema, dict) or not schema.get("description"):
            undeclared.append(name)
            continue
        for alt in schema.get("anyOf") or [schema]:
            undescribed += [f"{name}.{row['name']}" for row in fields(alt) if not row["description"]]
        undescribed += [f"{name} config.{row['name']}" for row in fields(comp.config_schema or {})
                        if not row["description"]]
        if not comp.config_schema:
            undescribed.append(f"{name} config")
    assert not undeclared and not undescribed, (undeclared, undescribed)


def fm(*args):
    return subprocess.run(FM + list(args), capture_output=True, text=True, timeout=60)


def test_schema_component_shows_config_and_output_fields():
    res = fm("schema", "--component", "critic")
    assert res.returncode == 0, res.stderr
    config, output = res.stdout.split("\noutput:\n")
    assert "content" in config and "required" in config
    assert "feedback" in output and "detailed feedback" in output and "score" in output
    res = fm("schema", "--component", "merge")
    assert "open-ended" in res.stdout  # references into it are not checked, and it says so
    doc = json.loads(fm("schema", "--component", "critic", "--json").stdout)
    assert doc["output_schema"]["properties"]["score"]["description"]


@pytest.mark.parametrize("name", ["http-request", "foreach", "generator", "json-transform", "subpipeline"])
def test_schema_component_text_for_builtins(name):
    res = fm("schema", "--component", name)
    assert res.returncode == 0 and "config:" in res.stdout and "output:" in res.stdout, res.stderr
