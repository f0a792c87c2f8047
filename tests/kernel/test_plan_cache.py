"""compile_cached: one plan per pipeline content and components mapping."""
from __future__ import annotations

import pytest

from flowmason.kernel import plan as planmod
from flowmason.kernel.errors import PipelineValidationError
from flowmason.kernel.model import parse_pipeline
from flowmason.kernel.plan import clear_plan_cache, compile_cached

DATA = {"id": "c", "stages": [
    {"id": "a", "type": "t-echo", "config": {"value": "{{input.x}}"}},
    {"id": "b", "type": "t-echo", "depends_on": ["a"], "config": {"value": "{{upstream.a.value}}"}},
]}


@pytest.fixture
def components(probe):
    from flowmason.kernel import plugins

    clear_plan_cache()
    yield plugins.get_registry().components
    clear_plan_cache()


def test_same_content_same_plan(components):
    p = parse_pipeline(DATA)
    plan = compile_cached(p, components)
    assert compile_cached(p, components) is plan
    assert compile_cached(parse_pipeline(DATA), components) is plan  # loaded again: another object


def test_pipeline_edited_in_place_gets_a_new_plan(components):
    p = parse_pipeline(DATA)
    first = compile_cached(p, components)
    p.stages[1].config["value"] = "{{input.x}}!"
    second = compile_cached(p, components)
    assert second is not first and second.stages["b"].render({"input": {"x": 1}}) == {"value": "1!"}
    p.stages.append(p.stages[0].model_copy(update={"id": "c"}))
    third = compile_cached(p, components)
    assert "c" in third.stages
    p.stages[1].depends_on.append("c")
    fourth = compile_cached(p, components)
    assert fourth is not third and fourth.stages["b"].deps == ["a", "c"]
    p.stages[2].enabled = False  # a field that was at its default
    assert compile_cached(p, components).warnings == ["stage 'b' depends on disabled stage 'c' and will be skipped"]


def test_a_cached_plan_whose_pipeline_was_edited_is_not_handed_out(components):
    p = parse_pipeline(DATA)
    stale = compile_cached(p, components)
    p.stages[0].config["value"] = "edited"  # the cached plan's own pipeline changes under it
    fresh = compile_cached(parse_pipeline(DATA), components)  # asks for the original content
    assert fresh is not stale and fresh.stages["a"].render({"input": {"x": 1}}) == {"value": 1}


def test_other_components_mapping_compiles_again(components):
    p = parse_pipeline(DATA)
    plan = compile_cached(p, components)
    assert compile_cached(p, dict(components)) is not plan


def test_invalid_pipeline_is_not_cached(components):
    bad = parse_pipeline({"id": "bad", "stages": [{"id": "a", "type": "t-echo", "depends_on": ["ghost"]}]})
    for _ in range(2):
        with pytest.raises(PipelineValidationError):
            compile_cached(bad, components)
    assert not planmod._cache


def test_cache_is_bounded(components):
    plans = [compile_cached(parse_pipeline({**DATA, "id": f"c{i}"}), components) for i in range(planmod._CACHE_SIZE + 1)]
    assert len(planmod._cache) == planmod._CACHE_SIZE
    assert compile_cached(parse_pipeline({**DATA, "id": "c0"}), components) is not plans[0]  # the oldest went
    assert compile_cached(parse_pipeline({**DATA, "id": f"c{planmod._CACHE_SIZE}"}), components) is plans[-1]
