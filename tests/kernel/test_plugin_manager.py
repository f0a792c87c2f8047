"""The strict plugin manager: misspelt hooks refused, documented order, registration through pluggy, tracing."""
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


class Misspelt:
    @hookimpl
    def fm_stage_finsihed(self, run, stage, result):
        pass


class WrongArgs:
    @hookimpl
    def fm_stage_finished(self, run, stage, outcome):
        pass


def test_a_misspelt_hookimpl_is_refused_at_build_with_the_plugin_and_a_suggestion():
    with pytest.raises(PluginError) as err:
        plugins.reset("control_flow", extra=[Misspelt()])
    text = str(err.value) + " " + (err.value.hint or "")
    assert "fm_stage_finsihed" in text and "did you mean 'fm_stage_finished'" in text
    assert "Misspelt" in text  # the plugin, by the only name pluggy knows for an unnamed object
    plugins.reset()


def test_a_misspelt_hookimpl_registered_at_run_time_is_refused_and_not_kept(fresh_plugins):
    bad = Misspelt()
    with pytest.raises(PluginError, match="plugin 'typo'.*fm_stage_finsihed"):
        plugins.register_plugin(bad, name="typo")
    assert not plugins.get_plugin_manager().is_registered(bad)
    assert "typo" not in {p["name"] for p in plugins.describe_plugins()}


def test_a_hookimpl_with_arguments_the_hook_lacks_names_the_plugin(fresh_plugins):
    with pytest.raises(PluginError, match="plugin 'wrong'.*outcome"):
        plugins.register_plugin(WrongArgs(), name="wrong")


def test_an_optional_hook_of_another_host_is_allowed(fresh_plugins):
    class Other:
        @hookimpl(optionalhook=True)
        def fm_something_for_a_newer_flowmason(self):
            pass

    plugins.register_plugin(Other(), name="other")
    assert plugins.get_plugin_manager().has_plugin("other")


def _named(name: str, order: list[str]):
    @operator(f"t-{name}")
    def comp(ctx):
        return None

    class Plugin:
        @hookimpl
        def fm_register_components(self, register):
            order.append(name)
            register(comp)

    return Plugin()


def test_registration_hooks_run_in_registration_order_and_the_first_authenticator_wins():
    order: list[str] = []
    first, second = _named("first", order), _named("second", order)
    # builtins in DEFAULT_PLUGINS order, then run-time plugins in the order they were registered
    plugins.reset("operators,control_flow", extra=[first, second])
    try:
        components = plugins.get_registry().components
        assert order == ["first", "second"]
        names = [n for n in components if n in ("t-first", "t-second")]
        assert names == ["t-first", "t-second"]
        origins = plugins.get_registry().origin
        builtin_order = [n for n, _ in plugins.DEFAULT_PLUGINS]
        seen = [origins[("component", n)] for n in components]
        firsts = list(dict.fromkeys(seen))
        assert firsts[:2] == sorted(firsts[:2], key=builtin_order.index)  # control_flow before operators
        assert firsts[2:] == [plugins.get_plugin_manager().get_name(first), plugins.get_plugin_manager().get_name(second)]
    finally:
        plugins.reset()


def test_tryfirst_moves_a_registration_to_the_front():
    order: list[str] = []

    class Early:
        @hookimpl(tryfirst=True)
        def fm_register_components(self, register):
            order.append("early")

    plugins.reset("control_flow", extra=[_named("plain", order), Early()])
    try:
        plugins.get_registry().components
        assert order == ["early", "plain"]
    finally:
        plugins.reset()


def test_registration_goes_through_pluggys_caller_so_monitoring_sees_it():
    pm = plugins.reset("control_flow,operators")
    lines: list[str] = []
    undo = plugins.trace_hook_calls(pm, lines.append)
    try:
        plugins.get_registry().components
    finally:
        undo()
        plugins.reset()
    calls = [line for line in lines if "fm_register_components(" in line]
    assert [c.split("-> ")[1] for c in calls] == ["[control_flow]", "[operators]"]
    assert any("fm_register_components returned" in line for line in lines)


def test_fm_trace_plugins_prints_hook_calls_to_stderr(tmp_path):
    p = tmp_path / "t.pipeline.json"
    p.write_text(json.dumps({"name": "t", "stages": [{"id": "a", "type": "json-transform",
                                                      "config": {"data": {"x": 1}}}]}))
    env = {**os.environ, "FM_TRACE_PLUGINS": "1", "FM_PLUGINS": "operators,control_flow,loaders,core_cli,sqlite_store"}
    out = subprocess.run([sys.executable, "-m", "flowmason.kernel.cli", "run", str(p), "-q", "--no-record-run"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "fm-trace: fm_register_components(register=register) -> [operators]" in out.stderr
    assert "fm-trace: fm_resolve_pipeline returned None" in out.stderr  # the runner resolves every pipeline
    assert "fm-trace:" not in out.stdout
    quiet = subprocess.run([sys.executable, "-m", "flowmason.kernel.cli", "run", str(p), "-q", "--no-record-run"],
                           capture_output=True, text=True, env={**env, "FM_TRACE_PLUGINS": "0"}, timeout=60)
    assert quiet.returncode == 0 and "fm-trace" not in quiet.stderr


def test_a_plugin_crashing_in_a_registration_hook_is_named():
    class Broken:
        @hookimpl
        def fm_register_exporters(self, register):
            raise KeyError("oops")

    plugins.reset("control_flow", extra=[Broken()])
    try:
        name = plugins.get_plugin_manager().get_name(next(p for p in plugins.get_plugin_manager().get_plugins()
                                                          if isinstance(p, Broken)))
        with pytest.raises(PluginError, match=f"plugin '{name}' failed in fm_register_exporters: KeyError"):
            plugins.get_registry().exporters
    finally:
        plugins.reset()


def test_a_plugin_whose_requirement_is_left_out_is_refused_naming_both():
    from flowmason.kernel.errors import PluginError
    from flowmason.kernel.plugins import build_plugin_manager

    with pytest.raises(PluginError) as info:
        build_plugin_manager("-auth")
    assert "'saml' requires 'auth'" in str(info.value) and "FM_PLUGINS=-saml" in (info.value.hint or "")
    assert build_plugin_manager("-auth,-saml").has_plugin("http_api")
