"""`compile_plan` / `fm validate`: every problem names the stage and field and says how to fix it."""
from __future__ import annotations

import pytest

from flowmason.kernel import plugins
from flowmason.kernel.errors import PipelineLoadError, PipelineValidationError
from flowmason.kernel.model import load_pipeline, parse_pipeline
from flowmason.kernel.plan import compile_plan

from tests.kernel.helpers import Probe


@pytest.fixture
def components():
    plugins.reset(None, extra=[Probe()])
    yield plugins.get_registry().components
    plugins.reset()


def problems(data, components):
    with pytest.raises(PipelineValidationError) as ei:
        compile_plan(parse_pipeline(data), components)
    return ei.value.problems


def test_unknown_component_suggests_close_name(components):
    (p,) = problems({"name": "x", "stages": [{"id": "a", "component_type": "foreech"}]}, components)
    assert p.stage == "a" and p.field == "component_type" and "foreach" in p.hint


def test_unknown_dependency(components):
    (p,) = problems({"name": "x", "stages": [{"id": "a", "type": "t-echo", "depends_on": ["ghost"]}]}, components)
    assert p.stage == "a" and p.field == "depends_on[0]" and "ghost" in p.message


def test_cycle_is_named(components):
    ps = problems({"name": "x", "stages": [
        {"id": "a", "type": "t-echo", "depends_on": ["c"]},
        {"id": "b", "type": "t-echo", "depends_on": ["a"]},
        {"id": "c", "type": "t-echo", "depends_on": ["b"]}]}, components)
    assert any("cycle" in p.message and "a" in p.message and "c" in p.message for p in ps)


def test_reference_to_stage_not_upstream(components):
    ps = problems({"name": "x", "stages": [
        {"id": "a", "type": "t-echo"},
        {"id": "b", "type": "t-echo", "config": {"value": "{{upstream.a.value}}"}}]}, components)
    assert ps[0].stage == "b" and "depends_on" in ps[0].hint


@pytest.mark.parametrize("ref", ["{{stages.a.output.value}}", "{{a.output.value}}", "{{upstream.a.output}}",
                                 "x {{stages.a.output}} y"])
def test_the_earlier_forms_of_a_reference_are_checked_like_upstream(components, ref):
    ps = problems({"name": "x", "stages": [
        {"id": "a", "type": "t-echo"},
        {"id": "b", "type": "t-echo", "config": {"value": ref, "other": ref.replace("a.", "nope.", 1)}}]}, components)
    assert [(p.stage, p.field, p.message) for p in ps] == [
        ("b", "depends_on", "references 'upstream.a' but does not depend on it"),
        ("b", "config", "references unknown stage 'upstream.nope'")]


def test_reference_to_unknown_stage(components):
    ps = problems({"name": "x", "stages": [
        {"id": "b", "type": "t-echo", "config": {"value": "{{upstream.nope.value}}"}}]}, components)
    assert "nope" in ps[0].message


def test_unreachable_stage_outside_loop(components):
    ps = problems({"name": "x", "stages": [
        {"id": "loop", "type": "foreach", "config": {"items": [1], "loop_stages": ["body"]}},
        {"id": "body", "type": "t-echo"},
        {"id": "out", "type": "t-echo", "depends_on": ["body"]}]}, components)
    assert any(p.stage == "out" and "unreachable" in p.message for p in ps)


def test_control_flow_names_unknown_stage(components):
    ps = problems({"name": "x", "stages": [
        {"id": "loop", "type": "foreach", "config": {"items": [1], "loop_stages": ["missing"]}}]}, components)
    assert ps[0].field == "config.loop_stages"


def test_config_schema_mismatch(components):
    ps = problems({"name": "x", "stages": [
        {"id": "loop", "type": "foreach", "config": {"items": [1], "loop_stages": "notalist", "max_parallel": 0}}]}, components)
    assert any(p.field == "config.max_parallel" for p in ps)


def test_duplicate_ids_and_empty(components):
    ps = problems({"name": "x", "stages": [{"id": "a", "type": "t-echo"}, {"id": "a", "type": "t-echo"}]}, components)
    assert "duplicate" in ps[0].message
    assert "no stages" in problems({"name": "x", "stages": []}, components)[0].message


def test_malformed_json_names_line(tmp_path):
    f = tmp_path / "bad.pipeline.json"
    f.write_text('{"name": "x",\n "stages": [,]}')
    with pytest.raises(PipelineLoadError) as ei:
        load_pipeline(f)
    assert "line 2" in ei.value.message


def test_wrong_field_type_names_stage(tmp_path):
    with pytest.raises(PipelineLoadError) as ei:
        parse_pipeline({"name": "x", "stages": [{"id": "a", "type": "t-echo", "depends_on": "b", "timeout_ms": -5}]})
    assert ei.value.stage == "a"


def test_legacy_field_aliases():
    p = parse_pipeline({"name": "x", "version": 2, "stages": [
        {"id": "a", "type": "JSON_Transform", "error_handling": "continue", "position": {"x": 1, "y": 2},
         "unknown_extra": 1},
        {"id": "b", "component": "json-transform"}]})  # what the earlier product's `flowmason init` writes
    st = p.stages[0]
    assert st.component_type == "json-transform" and st.error_policy() == "continue" and p.version == "2"
    assert st.model_extra["unknown_extra"] == 1  # kept for the compiler to judge (tests/kernel/test_keys.py)
    assert p.stages[1].component_type == "json-transform"


def test_a_stage_with_no_component_says_which_keys_name_one():
    with pytest.raises(PipelineLoadError) as ei:
        parse_pipeline({"name": "x", "stages": [{"id": "a", "config": {}}]})
    assert ei.value.stage == "a" and "'component_type' (or 'type', or 'component')" in ei.value.message
