"""The folder → import-name mapping, as installed and as static tools read it.

Each top-level source folder is one part of the ``flowmason`` package
(``sdk/`` is ``flowmason``, ``kernel/`` is ``flowmason.kernel``, ...). The
development install (README.md) is setuptools' strict editable mode, whose
static path entry pyright and other tools can follow; the lenient mode's
import hook leaves them blind (every ``flowmason.*`` import unresolved).
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"sdk": "flowmason", "kernel": "flowmason.kernel", "plugins": "flowmason.plugins",
           "functions": "flowmason.functions", "edge": "flowmason.edge", "operator": "flowmason.operator"}
PYRIGHT = ROOT / "tools" / "node_modules" / ".bin" / "pyright"


def _modules():
    for folder, package in FOLDERS.items():
        base = ROOT / folder
        if not (base / "__init__.py").is_file():
            continue
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield ".".join([package, *parts]), path


def test_every_module_imports_by_its_flowmason_name_from_its_folder():
    wrong = []
    for name, path in _modules():
        module = importlib.import_module(name)
        if Path(os.path.realpath(module.__file__)) != path:
            wrong.append(f"{name}: {module.__file__} (expected {path})")
    assert not wrong, "\n".join(wrong)


def test_every_data_file_is_installed_beside_its_module():
    # a template or script the code opens next to its module must be package data, or a wheel loses it
    missing = []
    for folder, package in FOLDERS.items():
        base = ROOT / folder
        if not (base / "__init__.py").is_file():
            continue
        for path in base.rglob("*"):
            if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            module_dir = next(p for p in path.parents if (p / "__init__.py").is_file())
            name = ".".join([package, *module_dir.relative_to(base).parts])
            installed = Path(importlib.import_module(name).__file__).parent / path.relative_to(module_dir)
            if not installed.is_file():
                missing.append(str(path.relative_to(ROOT)))
    assert not missing, f"not package data (pyproject.toml [tool.setuptools.package-data]): {missing}"


@pytest.mark.skipif(not PYRIGHT.exists(), reason="pyright is installed by .ci/run (npm ci --prefix tools)")
def test_pyright_resolves_every_flowmason_import():
    out = subprocess.run([str(PYRIGHT), "--outputjson", "-p", str(ROOT / "pyrightconfig.json")],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    report = json.loads(out.stdout)
    missing = [f"{d['file']}:{d['range']['start']['line'] + 1}: {d['message']}"
               for d in report["generalDiagnostics"] if d.get("rule") == "reportMissingImports"]
    assert not missing, "\n".join(missing[:20]) + f"\n({len(missing)} unresolved imports; is the install strict editable?)"
