"""Static checks of templates at compile time (kernel/refcheck.py): unknown names, unknown output fields."""
from __future__ import annotations

import pytest

from flowmason.kernel import plugins
from flowmason.kernel.components import operator
from flowmason.kernel.errors import PipelineValidationError
from flowmason.kernel.model import parse_pipeline
from flowmason.kernel.outputs import f, obj
from flowmason.kernel.plan import compile_plan
from flowmason.kernel.plugins import hookimpl


@operator("t-point", output_schema=obj("a point", {"x": f("number", "x"), "meta": obj("m", {"unit": f("string", "u")}),
                                                    "extra": f("object", "open")}))
def point(ctx):
    return {"x": 1, "meta": {"unit": "m"}, "extra": {}}


@operator("t-open", output_schema={"description": "anything"})
def anything(ctx):
    return {}


class _Plugin:
    @hookimpl
    def fm_register_components(self, register):
        register(point)
        register(anything)


@pytest.fixture
def components():
    plugins.reset(None, extra=[_Plugin()])
    yield plugins.get_registry().components
    plugins.reset()


def compile_(components, *stages):
    return compile_plan(parse_pipeline({"id": "p", "stages": list(stages)}), components)


def problems(components, *stages):
    with pytest.raises(PipelineValidationError) as info:
        compile_(components, *stages)
    return info.value.problems


A = {"id": "a", "component_type": "t-point"}


def reader(ref, ctype="t-open", key="v"):
    return {"id": "b", "component_type": ctype, "depends_on": ["a"], "config": {key: ref}}


def test_unknown_field_of_a_closed_output_names_stage_field_and_guess(components):
    (p,) = problems(components, A, reader("{{upstream.a.y}}"))
    assert p.stage == "b" and p.field == "config.v" and "'upstream.a.y'" in p.message and "stage 'a'" in p.message
    (p,) = problems(components, A, reader("n = {{upstream.a.meta.unti}}"))
    assert "did you mean 'unit'?" in p.message and "'meta'" in p.message


def test_known_open_and_lenient_references_pass(components):
    for ref in ("{{upstream.a.x}}", "{{upstream.a.meta.unit}}", "{{upstream.a.extra.anything}}",
                "{{upstream.a.y or 0}}", "{{upstream.a.get('y')}}", "{{[k for k in upstream.a.extra]}}"):
        compile_(components, A, reader(ref))
    compile_(components, {"id": "a", "component_type": "t-open"}, reader("{{upstream.a.whatever.deep}}"))
    # a stage with a fallback_output may produce that instead: its output is open
    compile_(components, {**A, "fallback_output": {"y": 1}}, reader("{{upstream.a.y}}"))


def test_unknown_root_and_function(components):
    (p,) = problems(components, {"id": "a", "component_type": "t-open", "config": {"v": "{{inptu.x}}"}})
    assert p.stage == "a" and p.field == "config.v" and "unknown name 'inptu'" in p.message
    assert "did you mean 'input'?" in p.message
    (p,) = problems(components, {"id": "a", "component_type": "t-open", "config": {"v": "{{time.time()}}"}})
    assert "unknown name 'time'" in p.message
    (p,) = problems(components, {"id": "a", "component_type": "t-open", "config": {"v": "{{lenn(input.x)}}"}})
    assert "unknown function 'lenn'" in p.message and "'len'" in p.hint
    compile_(components, {"id": "a", "component_type": "t-open",
                          "config": {"v": "{{now()}} {{len(input.x) or env}} {{[i for i in range(3)]}}"}})


def test_lazy_keys_see_the_names_their_component_declares():
    plugins.reset()
    try:
        comps = plugins.get_registry().components
        compile_(comps, {"id": "t", "component_type": "json-transform", "config": {"template": {"k": "{{data.x}}"}}})
        compile_(comps, {"id": "t", "component_type": "text-template",
                         "config": {"template": "{{who}}", "values": {"who": "me"}}})
        compile_(comps, {"id": "t", "component_type": "text-template",
                         "config": {"template": "{{who}}", "values": "{{input.values}}"}})  # names known at run time
        with pytest.raises(PipelineValidationError, match="unknown name 'dta'"):
            compile_(comps, {"id": "t", "component_type": "json-transform", "config": {"template": "{{dta.x}}"}})
        # a json-transform's dict template gives exactly its keys
        with pytest.raises(PipelineValidationError, match="has no output field 'kk'"):
            compile_(comps, {"id": "t", "component_type": "json-transform", "config": {"template": {"k": 1}}},
                     {"id": "u", "component_type": "logger", "depends_on": ["t"],
                      "config": {"message": "{{upstream.t.kk}}"}})
    finally:
        plugins.reset()


def test_a_pydantic_model_declares_an_output_schema():
    from pydantic import BaseModel, Field

    class Out(BaseModel):
        total: int = Field(description="the total")

    comp = operator("t-model", output_schema=Out)(lambda ctx: {"total": 1})
    assert comp.output_schema["additionalProperties"] is False
    assert comp.output_schema["properties"]["total"]["description"] == "the total"
