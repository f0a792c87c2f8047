"""The examples a new user runs first: they validate, and their test file passes under `fm test`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
FM = [sys.executable, "-m", "flowmason.kernel.cli"]


def test_examples_validate():
    files = sorted(str(p) for p in EXAMPLES.glob("*.pipeline.json"))
    assert len(files) >= 3
    res = subprocess.run(FM + ["validate", *files], capture_output=True, text=True, env=dict(os.environ))
    assert res.returncode == 0, res.stdout + res.stderr


def test_hello_test_file_passes(tmp_path):
    res = subprocess.run(FM + ["test", str(EXAMPLES / "hello.test.json"), "--junit", str(tmp_path / "r.xml"),
                               "--coverage", str(tmp_path / "cov.json")],
                         capture_output=True, text=True, env=dict(os.environ), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 passed, 0 failed" in res.stdout
    assert (tmp_path / "r.xml").read_text().count("<testcase") == 2
