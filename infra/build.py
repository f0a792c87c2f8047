#!/usr/bin/env python3
"""Build the Lambda code folder (template.yaml's CodeUri, ``build/lambda``) for the template's architecture.

    python infra/build.py                 # for the template's Architectures and Runtime (arm64, python3.11)
    python infra/build.py --arch host     # for this machine (to import the handlers here)
    sam deploy --guided                   # then deploy it; not `sam build`, which strips .so and .pyc files

What it does, and why:

- installs flowmason (built as a wheel from a copy of the sources) and
  the dependencies of the ``aws``, ``server`` and ``auth`` extras with
  ``pip install --target`` for the template's platform
  (``--platform manylinux2014_aarch64 --only-binary=:all:
  --python-version 3.11 --implementation cp``): native modules such as
  pydantic_core are the ones the functions' CPU runs, whatever machine
  builds;
- leaves out what only the command line and ``fm serve`` use (typer, rich,
  uvicorn and what they pull in): the handlers never import them;
- precompiles every module (``compileall``, unchecked-hash ``.pyc``):
  Lambda's code folder is read-only, so without bytecode every cold start
  compiles everything it imports (about twice the import time). This needs
  the runtime's Python version on the build machine.

Needs pip and network access to PyPI (or a mirror pip is configured for).
tests/infra/test_build.py builds it and inspects the result.
"""
from __future__ import annotations

import argparse
import compileall
import platform
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("aws", "server", "auth")
# the CLI's and fm serve's, never imported by a handler
LEFT_OUT = {"typer", "rich", "uvicorn"}
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
SOURCES = ("pyproject.toml", "setup.py", "README.md", "sdk", "kernel", "plugins", "functions", "edge", "operator")


def template_target(template: Path) -> tuple[str, str]:
    """(architecture, python version) of the template's functions, from its Globals."""
    text = template.read_text(encoding="utf-8")
    arch = re.search(r"^\s+Architectures:\s*\[\s*([\w-]+)\s*\]", text, re.M)
    runtime = re.search(r"^\s+Runtime:\s*python(3\.\d+)\s*$", text, re.M)
    if not arch or not runtime:
        raise SystemExit(f"{template}: no Architectures/Runtime in Globals.Function; say --arch and --python")
    return arch.group(1), runtime.group(1)


def host_arch() -> str:
    machine = platform.machine().lower()
    return "arm64" if machine in ("aarch64", "arm64") else "x86_64"


def requirements(pyproject: Path) -> list[str]:
    """flowmason's requirements with the Lambda extras, minus what the handlers never import."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"])
    for extra in EXTRAS:
        reqs += [r for r in project["optional-dependencies"][extra] if not r.startswith("flowmason")]
    kept = []
    for req in reqs:
        name = re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower().replace("_", "-")  # type: ignore[union-attr]
        if name not in LEFT_OUT:
            kept.append(req)
    return kept


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def build(out: Path, arch: str, python: str) -> Path:
    if arch not in PLATFORMS:
        raise SystemExit(f"unknown architecture {arch!r}; the template says arm64 or x86_64")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    target = ["--target", str(out), "--platform", PLATFORMS[arch], "--only-binary=:all:",
              "--python-version", python, "--implementation", "cp"]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in SOURCES:  # a copy, so building the wheel leaves no build/ or egg-info in the checkout
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif path.is_file():
                shutil.copy2(path, src / name)
        pip("wheel", "--quiet", "--no-deps", "--wheel-dir", tmp, str(src))
        wheel = next(Path(tmp).glob("flowmason-*.whl"))
        pip("install", "--quiet", "--no-compile", *target, *requirements(ROOT / "pyproject.toml"))
        pip("install", "--quiet", "--no-compile", "--no-deps", *target, str(wheel))
    shutil.rmtree(out / "bin", ignore_errors=True)  # console scripts: nothing runs them on Lambda
    for stray in ("tests", "test"):  # a dependency's own tests at the top level would shadow nothing useful
        shutil.rmtree(out / stray, ignore_errors=True)
    compile_bytecode(out, python)
    return out


def compile_bytecode(out: Path, python: str) -> None:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if here != python:
        raise SystemExit(f"the functions run Python {python}; bytecode made by {here} would be ignored there. "
                         f"Run this script with python{python}")
    # unchecked-hash: Lambda never re-checks the source (its files' times come from the zip)
    ok = compileall.compile_dir(str(out), quiet=1, workers=0,
                                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    if not ok:
        raise SystemExit("some modules do not compile (see above)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "lambda")
    parser.add_argument("--arch", default=None, help="arm64, x86_64 or host (default: the template's)")
    parser.add_argument("--python", default=None, help="runtime version, e.g. 3.11 (default: the template's)")
    args = parser.parse_args()
    arch, python = template_target(args.template)
    arch = host_arch() if args.arch == "host" else (args.arch or arch)
    out = build(args.out, arch, args.python or python)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"built {out} for {arch} / Python {args.python or python}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
