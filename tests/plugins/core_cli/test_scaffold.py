"""`fm init`, `fm new pipeline`, `fm plugin new` (plugins/core_cli/scaffold.py), end to end in subprocesses.

Every template's project validates, runs and passes `fm test` offline (the
ai template's cassette answers its model calls); the plugin package pip
installs and shows in `fm plugins`, its component runs and its command works.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

FM = [sys.executable, "-m", "flowmason.kernel.cli"]


def fm(args, cwd, **env):
    return subprocess.run(FM + args, capture_output=True, text=True, timeout=120, cwd=cwd, env={**os.environ, **env})


@pytest.mark.parametrize("template", ["basic", "ai", "etl"])
def test_init_makes_a_project_whose_test_passes_offline(tmp_path, template):
    made = fm(["init", "demo", "--template", template], tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "demo"
    for rel in ("pipelines/demo.pipeline.json", "tests/demo.test.json", "tests/cassettes/demo.cassette.json", "README.md"):
        assert (project / rel).is_file(), rel
    assert fm(["validate", "pipelines/demo.pipeline.json"], project).returncode == 0
    # no key, no model server: FM_PROVIDER points nowhere useful, the cassette answers
    tested = fm(["test", "tests/", "--json"], project, FM_PROVIDER="anthropic", ANTHROPIC_API_KEY="")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert json.loads(tested.stdout)["totals"]["passed"] == 1
    if template != "ai":
        example = json.loads((project / "pipelines/demo.pipeline.json").read_text())["example_input"]
        assert fm(["run", "pipelines/demo.pipeline.json", "--input", json.dumps(example), "-q"], project).returncode == 0
    again = fm(["init", "demo"], tmp_path)
    assert again.returncode == 2 and "exists already" in again.stderr and "--force" in again.stderr


def test_new_pipeline_and_bad_names(tmp_path):
    made = fm(["new", "pipeline", "orders", "--template", "etl"], tmp_path)
    assert made.returncode == 0 and (tmp_path / "pipelines/orders.pipeline.json").is_file()
    assert fm(["validate", "pipelines/orders.pipeline.json"], tmp_path).returncode == 0
    bad = fm(["new", "pipeline", "Bad Name"], tmp_path)
    assert bad.returncode == 2 and "is not a lower-case name" in bad.stderr
    bad = fm(["new", "pipeline", "x", "--template", "nope"], tmp_path)
    assert bad.returncode == 2 and "use one of: basic, ai, etl" in bad.stderr


def test_plugin_new_installs_and_shows_in_fm_plugins(tmp_path):
    assert fm(["plugin", "new", "greet"], tmp_path).returncode == 0
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(tmp_path / "fm-greet")], check=True, capture_output=True, timeout=300)
    env = {"PYTHONPATH": str(site)}
    listed = json.loads(fm(["plugins", "--json"], tmp_path, **env).stdout)
    greet = next(p for p in listed if p["name"] == "greet")
    assert greet["source"].startswith("fm-greet") and "component:greet-shout" in greet["registers"]
    hello = fm(["greet", "--name", "Ada"], tmp_path, **env)
    assert hello.returncode == 0 and hello.stdout == "hello from fm-greet, Ada\n"
    # the package's own tests pass against this FlowMason
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=tmp_path / "fm-greet",
                           capture_output=True, text=True, timeout=300, env={**os.environ, **env})
    assert tests.returncode == 0, tests.stdout + tests.stderr
