"""infra/build.py: the Lambda artifact is built for the template's architecture, with bytecode, and its handlers import.

Runs the documented command twice (pip downloads from PyPI; the second
build reuses pip's cache for every pure-Python wheel): once for the
template's architecture, whose native modules must all be ELF files for
that CPU, and once for this machine, whose handlers are imported the way
Lambda's init does (``python -I -S`` with only the code folder on the
path, so nothing of this checkout or its virtualenv leaks in).

About a minute or two of pip: CI runs it (``.ci/run`` sets
``FLOWMASON_TEST_BUILD=1``); a plain local ``pytest`` skips it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "infra" / "build.py"
sys.path.insert(0, str(BUILD.parent))
import build as lambda_build  # noqa: E402 - the script, imported for its helpers

ELF_MACHINE = {"arm64": 183, "x86_64": 62}  # e_machine: EM_AARCH64, EM_X86_64
pytestmark = pytest.mark.skipif(os.environ.get("FLOWMASON_TEST_BUILD") != "1",
                                reason="builds the Lambda artifact with pip (FLOWMASON_TEST_BUILD=1; CI sets it)")


def _build(out: Path, *args: str) -> Path:
    done = subprocess.run([sys.executable, str(BUILD), "--out", str(out), *args], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("lambda") / "arm")


@pytest.fixture(scope="module")
def host_artifact(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("lambda") / "host", "--arch", "host")


def _machine(path: Path) -> int:
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF", path
    return int.from_bytes(head[18:20], "little")


def test_native_modules_are_built_for_the_template_s_architecture(artifact):
    arch, python = lambda_build.template_target(ROOT / "template.yaml")
    native = sorted(artifact.rglob("*.so"))
    assert any(p.name.startswith("_pydantic_core") for p in native)
    wrong = [f"{p.relative_to(artifact)}: e_machine {_machine(p)}" for p in native if _machine(p) != ELF_MACHINE[arch]]
    assert not wrong, f"not {arch}: {wrong}"
    tag = f"cpython-{python.replace('.', '')}"
    assert all(tag in p.name or "abi3" in p.name or p.name.count(".") == 1 for p in native), native


def test_every_module_has_its_bytecode_and_cli_only_packages_are_left_out(artifact):
    _, python = lambda_build.template_target(ROOT / "template.yaml")
    tag = f"cpython-{python.replace('.', '')}"
    missing = [str(p.relative_to(artifact)) for p in artifact.rglob("*.py")
               if not (p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc").is_file()]
    assert not missing, missing[:10]
    top = {p.name for p in artifact.iterdir()}
    assert not top & {"typer", "rich", "click", "pygments", "uvicorn", "tests", "dynamodb_json", "bin"}, top
    assert {"flowmason", "pydantic_core", "mangum", "starlette", "jwt", "bcrypt", "boto3"} <= top


IMPORT = """
import sys
sys.path[:0] = [sys.argv[1]]
import flowmason.functions.api as api, flowmason.functions.worker as worker
assert callable(api.handler) and callable(worker.handler) and callable(worker.dead_letter_handler)
assert all(m.__file__.startswith(sys.argv[1]) for m in (api, worker))
print("imported", len(sys.modules))
"""


def test_the_handlers_import_from_the_code_folder_alone(host_artifact):
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "FM_HOME": str(host_artifact.parent / "home"),
           "FM_STORE": "dynamodb://flowmason-dev?region=us-east-1", "FM_AUTH": "1", "FM_HTTP_DENY_PRIVATE": "1",
           "FM_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/flowmason-dev-runs"}
    done = subprocess.run([sys.executable, "-I", "-S", "-c", IMPORT, str(host_artifact)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("imported")
