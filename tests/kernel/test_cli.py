"""The root `fm` app: a plugin subset keeps the core commands (kernel/cli.py CLI_PLUGINS)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowmason.kernel.cli import with_cli_plugins

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello.pipeline.json"
# the installed console script when there is one (what users run), else the same entry point by module
FM_SCRIPT = Path(sys.executable).with_name("fm")
FM = [str(FM_SCRIPT)] if FM_SCRIPT.is_file() else [sys.executable, "-m", "flowmason.kernel.cli"]


def fm(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(FM + args, capture_output=True, text=True, timeout=60, env={**os.environ, **env})


@pytest.mark.parametrize("how", ["option", "env"])
def test_a_subset_still_runs_a_pipeline(how):
    subset = "control_flow,operators"
    args = ["run", str(HELLO), "--input", '{"name": "Ada"}', "-q"]
    res = fm(["--plugins", subset, *args]) if how == "option" else fm(args, FM_PLUGINS=subset)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["greeting"] == "Hello, Ada!"
    listing = fm(["--plugins", subset, "runs", "list", "--json"])  # and it was recorded
    assert listing.returncode == 0 and "hello" in listing.stdout, listing.stderr


def test_a_subset_lists_only_what_it_asked_for_plus_the_cli():
    res = fm(["--plugins", "control_flow,operators", "plugins", "--json"])
    assert {p["name"] for p in json.loads(res.stdout)} == {"control_flow", "operators", "core_cli", "sqlite_store"}


@pytest.mark.parametrize("spec, expected", [
    (None, None),  # defaults: they hold the CLI plugins already
    ("", ""),
    ("-timetravel", "-timetravel"),
    ("+extra", "+extra"),
    ("control_flow,operators", "control_flow,operators,+core_cli,+sqlite_store"),
    ("control_flow, core_cli", "control_flow,core_cli,+sqlite_store"),
    ("control_flow,-core_cli", "control_flow,-core_cli,+sqlite_store"),  # an explicit removal stands
])
def test_with_cli_plugins(spec, expected):
    assert with_cli_plugins(spec) == expected
