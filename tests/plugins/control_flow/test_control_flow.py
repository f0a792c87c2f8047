"""Control-flow components through the real executor: foreach, trycatch, router, conditional, return, subpipeline, break/continue."""
from __future__ import annotations

import pytest

from flowmason.kernel.errors import StageError

from tests.kernel.helpers import P, S, run




def test_foreach_parallel_bounded_collects_in_order(probe):
    p = P(S("src", value=list(range(12))),
          {"id": "loop", "component_type": "foreach", "depends_on": ["src"],
           "config": {"items": "{{upstream.src.value}}", "item_variable": "n", "loop_stages": ["w", "e"],
                      "parallel": True, "max_parallel": 4}},
          S("w", "t-sleep", seconds=0.01), S("e", deps=["w"], value="{{context.n * 10}}"),
          S("after", deps=["loop"], value="{{upstream.loop.results}}"))
    r = run(p)
    assert [x["value"] for x in r.output["value"]] == [n * 10 for n in range(12)]
    assert probe.max_running <= 4 and probe.calls["w"] == 12


def test_foreach_error_stops_unless_told(probe):
    base = {"items": [1, 2], "loop_stages": ["f"]}
    p = P({"id": "loop", "component_type": "foreach", "config": base}, S("f", "t-fail"))
    with pytest.raises(StageError):
        run(p)
    p = P({"id": "loop", "component_type": "foreach", "config": {**base, "break_on_error": False}}, S("f", "t-fail"), id="p2")
    r = run(p)
    assert len(r.output["errors"]) == 2


def test_trycatch_recovers_and_runs_finally(probe):
    p = P({"id": "tc", "component_type": "trycatch",
           "config": {"try_stages": ["t"], "catch_stages": ["c"], "finally_stages": ["f"]}},
          S("t", "t-fail", message="nope"), S("c", value="{{context.error.message}}"), S("f", value="done"))
    r = run(p)
    assert r.output["recovered"] is True
    assert "nope" in r.output["catch_result"]["value"]
    assert probe.calls["f"] == 1


def test_router_and_conditional_gate_branches(probe):
    p = P({"id": "r", "component_type": "router", "config": {"value": "{{input.kind}}",
           "routes": {"a": ["ra"], "b": ["rb"]}, "default_route": ["rd"]}},
          S("ra", deps=["r"], value="A"), S("rb", deps=["r"], value="B"), S("rd", deps=["r"], value="D"),
          S("join", deps=["ra", "rb", "rd"], value="{{upstream.ra.value or upstream.rb.value or upstream.rd.value}}"))
    assert run(p, {"kind": "b"}).output["value"] == "B"
    assert run(p, {"kind": "zzz"}).output["value"] == "D"
    assert probe.calls["ra"] == 0


def test_return_ends_run_early(probe):
    p = P({"id": "ret", "component_type": "return", "config": {"condition": "{{input.stop}}", "return_value": "early"}},
          S("later", deps=["ret"], value="late"))
    assert run(p, {"stop": True}).output == "early"
    assert probe.calls["later"] == 0
    assert run(p, {"stop": False}).output["value"] == "late"


def test_subpipeline_inline(probe):
    child = {"name": "child", "stages": [S("x", value="{{input.v}}-child")]}
    p = P({"id": "sub", "component_type": "subpipeline", "config": {"pipeline": child, "input_data": {"v": "{{input.v}}"}}})
    assert run(p, {"v": "hi"}).output["result"]["value"] == "hi-child"


def test_break_and_continue_inside_foreach(probe):
    p = P({"id": "loop", "component_type": "foreach",
           "config": {"items": [1, 2, 3, 4, 5], "item_variable": "n", "loop_stages": ["cont", "brk", "body"]}},
          {"id": "cont", "component_type": "continue_loop", "config": {"condition": "{{context.n == 2}}"}},
          {"id": "brk", "component_type": "break_loop", "depends_on": ["cont"], "config": {"condition": "{{context.n == 4}}", "result": "{{context.n}}"}},
          S("body", deps=["brk"], value="{{context.n}}"))
    out = run(p).output
    assert out["broken"] is True and out["break_result"] == 4
    assert [r and r["value"] for r in out["results"]] == [1, None, 3, None]
    assert probe.calls["body"] == 2
