"""The plugin itself: what it registers, that every config schema compiles, that loading it stays cheap."""
from __future__ import annotations

import subprocess
import sys

from flowmason.kernel import plugins
from flowmason.kernel.schemas import compile_schema
from flowmason.plugins.operators import COMPONENTS

EXPECTED = {"http-request", "json-transform", "filter", "loop", "schema-validate", "variable-set", "variable-get",
            "logger", "merge", "text-template", "delay", "output-router", "error-router"}


def test_registers_the_core_operators_under_this_plugin():
    reg = plugins.get_registry()
    assert {c.name for c in COMPONENTS} == EXPECTED
    for name in EXPECTED:
        assert reg.origin[("component", name)] == "operators"
        comp = reg.components[name]
        assert comp.kind == "operator" and comp.category == "core" and comp.description


def test_every_config_schema_compiles_and_lazy_keys_are_declared():
    for comp in COMPONENTS:
        assert comp.config_schema["type"] == "object"
        compile_schema(comp.config_schema)
        for key in comp.lazy:
            assert key in comp.config_schema["properties"], (comp.name, key)


def test_loading_the_plugin_does_not_import_httpx_or_asyncio():
    # `fm validate`, `fm plugins` and `fm schema` load every plugin; the network stack waits for a run
    code = "import sys, flowmason.plugins.operators; print('httpx' in sys.modules, 'asyncio' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
