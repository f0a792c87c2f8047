"""Misspelt stage, retry_config and control-flow config keys are errors with a "did you mean"; the earlier product's keys are not."""
from __future__ import annotations

import pytest

from flowmason.kernel import plugins
from flowmason.kernel.errors import PipelineValidationError
from flowmason.kernel.model import parse_pipeline
from flowmason.kernel.plan import compile_plan


def problems(*stages):
    with pytest.raises(PipelineValidationError) as info:
        compile_plan(parse_pipeline({"id": "k", "stages": list(stages)}), plugins.get_registry().components)
    return [(p.stage, p.field, p.message, p.hint) for p in info.value.problems]


def compiles(*stages):
    return compile_plan(parse_pipeline({"id": "k", "stages": list(stages)}), plugins.get_registry().components)


A = {"id": "a", "type": "json-transform", "config": {"data": 1}}


@pytest.mark.parametrize("key, value, wanted", [
    ("depend_on", ["a"], "depends_on"), ("confg", {}, "config"), ("retry_confg", {}, "retry_config"),
    ("timeout_msec", 5, "timeout_ms"), ("positon", {"x": 1}, "position"),
])
def test_a_misspelt_stage_key_names_stage_key_and_the_right_one(key, value, wanted):
    found = problems(A, {"id": "b", "type": "json-transform", key: value})
    assert found == [("b", key, f"unknown stage key '{key}'", f"did you mean '{wanted}'?")]


def test_a_key_like_nothing_says_where_own_data_goes():
    [(stage, field, msg, hint)] = problems({**A, "colour": "red"})
    assert (stage, field) == ("a", "colour") and "'metadata'" in hint


def test_retry_config_typos_are_errors_and_its_earlier_keys_are_read():
    found = problems({**A, "retry_config": {"max_retry": 3, "max_retries": 1}})
    assert found == [("a", "retry_config.max_retry", "unknown retry_config key 'max_retry'", "did you mean 'max_retries'?")]
    plan = compiles({**A, "retry_config": {"max_retries": 2, "backoff_ms": 50, "retry_on_errors": ["Timeout"]}})
    retry = plan.stages["a"].stage.retry_config
    assert (retry.max_retries, retry.initial_delay_ms) == (2, 50)
    assert plan.warnings == ["stage 'a': retry_config 'retry_on_errors' is not acted on; every failure is retried"]
    # no count: 3 retries, the earlier product's default; no retry_config: none
    assert compiles({**A, "retry_config": {"backoff_ms": 10}}).stages["a"].stage.retry_config.max_retries == 3
    assert compiles(A).stages["a"].stage.retry_config is None


def test_every_problem_is_reported_at_once():
    found = problems({**A, "depend_on": []}, {"id": "b", "type": "json-transform", "retry_config": {"max_retry": 1}})
    assert [f for _, f, _, _ in found] == ["depend_on", "retry_config.max_retry"]


def test_the_earlier_products_stage_keys_are_tolerated():
    plan = compiles({**A, "component_package": "acme/x@1", "metadata": {"k": 1}, "position": {"x": 1, "y": 2},
                     "llm_settings": {"temperature": 0.1}, "generated_from": "a prompt", "rationale": "why",
                     "error_handling": "continue", "description": "d", "enabled": True})
    assert plan.warnings == []


@pytest.mark.parametrize("stage, field, hint", [
    ({"id": "c", "type": "conditional", "config": {"condtion": True}}, "config.condtion", "did you mean 'condition'?"),
    ({"id": "f", "type": "foreach", "config": {"items": [], "loop_stages": ["a"], "max_paralel": 2}},
     "config.max_paralel", "did you mean 'max_parallel'?"),
    ({"id": "t", "type": "trycatch", "config": {"try_stages": ["a"], "catch_stage": ["a"]}},
     "config.catch_stage", "did you mean 'catch_stages'?"),
    ({"id": "r", "type": "router", "config": {"value": 1, "routes": {}, "default": ["a"]}},
     "config.default", "did you mean 'default_route'?"),
    ({"id": "s", "type": "subpipeline", "config": {"pipeline_id": "x", "inputs": {}}},
     "config.inputs", "did you mean 'input_data'?"),
])
def test_control_flow_config_typos(stage, field, hint):
    found = problems(A, stage)
    assert [(s, f, h) for s, f, _, h in found] == [(stage["id"], field, hint)]


def test_control_flow_accepts_the_earlier_products_config_keys():
    compiles(A, {"id": "t", "type": "trycatch", "config": {"try_stages": ["a"], "error_scope": "all",
                                                           "catch_error_types": ["X"], "pass_data": 1}},
             {"id": "c", "type": "conditional", "depends_on": ["t"],
              "config": {"condition": True, "condition_expression": "{{True}}", "pass_data": 1}})
