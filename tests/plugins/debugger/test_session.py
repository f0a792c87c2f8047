"""Breakpoints over the stage gate: conditions, hit counts, iterations, log points, step, pause, stop."""
from __future__ import annotations

import asyncio

import pytest

from flowmason.kernel.errors import ConfigError, RunCancelledError
from flowmason.kernel.executor import Execution, plan_for
from flowmason.kernel.model import RunStatus
from flowmason.plugins.debugger import Breakpoint, DebugSession

from tests.kernel.helpers import P, S

LOOP = P(
    {"id": "review", "component_type": "t-echo", "config": {"value": {"score": 0.3}}},
    {"id": "loop", "component_type": "foreach", "depends_on": ["review"],
     "config": {"items": [10, 20, 30, 40], "loop_stages": ["body"]}},
    {"id": "body", "component_type": "t-echo", "config": {"value": "{{context.item}}"}},
)


async def drive(session: DebugSession, pipeline, script) -> tuple[list, Execution]:
    """Run with the session's gate; ``script(stop)`` answers each stop (continue, step, stop...)."""
    stops: list = []

    def on_stop(stop):
        stops.append((stop.stage, stop.point.iteration, stop.reason))
        asyncio.get_running_loop().call_soon(script, session, stop)

    session.on_stop = on_stop
    ex = Execution(plan_for(pipeline), {}, gate=session)
    try:
        await ex.execute()
    except RunCancelledError:
        pass
    return stops, ex


def cont(session, stop):
    session.continue_()


def test_a_conditional_breakpoint_stops_only_in_the_matching_iteration(probe):
    s = DebugSession()
    s.set_breakpoints("body", [Breakpoint("body", condition="{{context.item}} == 30")])
    stops, ex = asyncio.run(drive(s, LOOP, cont))
    assert stops == [("body", "2", "breakpoint")]
    assert ex.run.status is RunStatus.COMPLETED


def test_the_plain_stage_output_form_and_iteration_filters(probe):
    s = DebugSession()
    s.set_breakpoints("body", [Breakpoint("body", condition="review.output.value['score'] < 0.5", iteration="1")])
    stops, _ = asyncio.run(drive(s, LOOP, cont))
    assert stops == [("body", "1", "breakpoint")]


@pytest.mark.parametrize("hit, expected", [("3", ["2"]), (">= 3", ["2", "3"]), ("% 2 == 0", ["1", "3"])])
def test_hit_counts(probe, hit, expected):
    s = DebugSession()
    s.set_breakpoints("body", [Breakpoint("body", hit=hit)])
    loop = P(*[st.model_dump(mode="json", exclude_none=True) for st in LOOP.stages[:1]],
             {"id": "loop", "component_type": "foreach", "depends_on": ["review"],
              "config": {"items": [10, 20, 30, 40], "loop_stages": ["body"], "parallel": False}},
             LOOP.stages[2].model_dump(mode="json", exclude_none=True))
    stops, _ = asyncio.run(drive(s, loop, cont))
    assert [it for _, it, _ in stops] == expected


def test_a_malformed_hit_condition_is_refused_when_set():
    with pytest.raises(ConfigError):
        Breakpoint("x", hit="sometimes")


def test_a_log_point_logs_and_does_not_stop(probe):
    logs = []
    s = DebugSession()
    s.set_breakpoints("review", [Breakpoint("review", log="inputs are {{len(input)}}")])
    ex = Execution(plan_for(P(S("review"))), {"a": 1}, gate=s,
                   listeners=[lambda kind, run, stage, data: logs.append(data["message"]) if kind == "stage.log" else None])
    asyncio.run(ex.execute())
    assert logs == ["inputs are 1"]


def test_step_then_stop_and_variables(probe):
    seen = []

    def script(session, stop):
        seen.append(stop.variables()["upstream"].get("a"))
        if stop.stage == "a":
            session.step()
        else:
            assert stop.evaluate("{{upstream.a.value}}") == 1
            session.stop()

    s = DebugSession()
    s.set_breakpoints("a", [Breakpoint("a")])
    stops, ex = asyncio.run(drive(s, P(S("a", value=1), S("b", deps=["a"]), S("c", deps=["b"])), script))
    assert stops == [("a", None, "breakpoint"), ("b", None, "step")]
    assert seen == [None, {"value": 1, "stage": "a"}]
    assert ex.run.status is RunStatus.CANCELLED
    assert probe.calls["c"] == 0


def test_pause_stops_at_the_next_stage(probe):
    s = DebugSession()
    s.pause()
    stops, _ = asyncio.run(drive(s, P(S("a"), S("b", deps=["a"])), cont))
    assert stops == [("a", None, "pause")]
