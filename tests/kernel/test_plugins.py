"""The plugin manager: built-ins, a pip-installed third-party plugin, subsets, duplicates."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from flowmason.kernel import plugins
from flowmason.kernel.components import operator
from flowmason.kernel.errors import PluginError
from flowmason.kernel.plugins import hookimpl

FM = [sys.executable, "-m", "flowmason.kernel.cli"]


def fm(args, env_extra=None, **kw):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run(FM + args, capture_output=True, text=True, env=env, timeout=60, **kw)


def test_third_party_plugin_component_and_command_appear(installed_plugin, tmp_path):
    env = {"PYTHONPATH": str(installed_plugin)}
    listing = json.loads(fm(["plugins", "--json"], env).stdout)
    hello = next(p for p in listing if p["name"] == "hello")
    assert hello["source"] == "fm-hello-plugin 0.0.1"
    assert "component:shout" in hello["registers"]
    assert set(hello["hooks"]) == {"fm_register_components", "fm_register_commands"}
    out = fm(["hello", "--name", "fm"], env)
    assert out.returncode == 0 and out.stdout.strip() == "hello, fm"
    pipeline = tmp_path / "p.pipeline.json"
    pipeline.write_text(json.dumps({"name": "s", "stages": [{"id": "a", "type": "shout", "config": {"text": "{{input.t}}"}}]}))
    res = fm(["run", str(pipeline), "--input", '{"t": "hey"}', "-q"], env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"text": "HEY!"}


def test_subset_by_name_loads_only_those(installed_plugin):
    pm = plugins.build_plugin_manager("control_flow,core_cli")
    assert {name for name, _ in pm.list_name_plugin()} == {"control_flow", "core_cli"}
    # the `fm` process adds the store `fm run` records to (kernel/cli.py CLI_PLUGINS), nothing else
    env = {"PYTHONPATH": str(installed_plugin), "FM_PLUGINS": "control_flow,core_cli"}
    listing = json.loads(fm(["plugins", "--json"], env).stdout)
    assert {p["name"] for p in listing} == {"control_flow", "core_cli", "sqlite_store"}
    listing = json.loads(fm(["--plugins", "control_flow,core_cli,hello", "plugins", "--json"], {"PYTHONPATH": str(installed_plugin)}).stdout)
    assert {p["name"] for p in listing} == {"control_flow", "core_cli", "sqlite_store", "hello"}


def test_unknown_plugin_name_is_an_error():
    with pytest.raises(PluginError, match="nosuch"):
        plugins.build_plugin_manager("control_flow,nosuch")


def test_duplicate_component_names_both_plugins():
    @operator("foreach")
    def fake(ctx):
        return None

    class Dup:
        @hookimpl
        def fm_register_components(self, register):
            register(fake)

    plugins.reset("control_flow", extra=[Dup()])
    try:
        with pytest.raises(PluginError, match="control_flow"):
            plugins.get_registry().components
    finally:
        plugins.reset()


def test_kernel_import_pulls_no_cloud_or_llm_sdk():
    code = "import sys, flowmason.kernel; import flowmason.kernel.executor; print(sorted(m for m in ('boto3','anthropic','botocore','httpx','starlette','typer','rich') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
