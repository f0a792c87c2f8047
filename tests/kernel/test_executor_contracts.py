"""The executor's extension contracts: the stage gate, stage wrappers, suspend/resume and the event channel."""
from __future__ import annotations

import asyncio

import pytest

from flowmason.kernel import plugins
from flowmason.kernel.executor import Execution, StagePoint, plan_for
from flowmason.kernel.model import RunStatus, StageStatus
from flowmason.kernel.plugins import hookimpl

from tests.kernel.helpers import P, S


def test_a_gate_held_past_the_timeout_does_not_fail_the_stage_nor_repeat_on_retries(probe):
    # the debugger's breakpoint: held longer than timeout_ms, before rendering, outside the retry loop
    seen: list[tuple[str, str | None]] = []

    async def gate(point: StagePoint) -> None:
        seen.append((point.stage.id, point.iteration))
        if point.stage.id == "flaky":
            await asyncio.sleep(0.3)

    p = P(S("a", value=1),
          {"id": "flaky", "component_type": "t-fail", "config": {"fail_times": 1}, "depends_on": ["a"],
           "timeout_ms": 100, "retry_config": {"max_retries": 2, "initial_delay_ms": 1, "max_delay_ms": 2}})
    run = asyncio.run(Execution(plan_for(p), {}, gate=gate).execute())
    assert run.status is RunStatus.COMPLETED
    assert run.output == {"attempt": 2}
    assert seen == [("a", None), ("flaky", None)]  # once per stage, not per attempt


def test_a_gate_that_says_where_it_may_stop_is_awaited_only_there(probe):
    # a debugger with one breakpoint leaves every other stage on the inline fast path
    class Gate:
        def __init__(self):
            self.asked, self.awaited = [], []

        def wants(self, stage_id, iteration):
            self.asked.append(stage_id)
            return stage_id == "b"

        async def __call__(self, point):
            self.awaited.append(point.stage.id)

    gate = Gate()
    ex = Execution(plan_for(P(S("a"), S("b", deps=["a"]), S("c", deps=["b"]))), {}, gate=gate)
    asyncio.run(ex.execute())
    assert ex.inline and gate.awaited == ["b"]
    assert probe.calls == {"a": 1, "b": 1, "c": 1}


def test_the_gate_sees_the_scope_and_foreach_iteration_paths(probe):
    hits: list[str | None] = []
    deep: list[str | None] = []

    async def gate(point: StagePoint) -> None:
        if point.stage.id == "inner" and point.evaluate("{{context.item}} == 'b'"):
            hits.append(point.iteration)
        if point.stage.id == "deep":
            deep.append(point.iteration)

    p = P({"id": "loop", "component_type": "foreach",
           "config": {"items": ["a", "b", "c"], "loop_stages": ["inner", "nested"]}},
          {"id": "inner", "component_type": "t-echo", "config": {"value": "{{context.item}}"}},
          {"id": "nested", "component_type": "foreach", "depends_on": ["inner"],
           "config": {"items": [1, 2], "loop_stages": ["deep"], "item_variable": "n"}},
          {"id": "deep", "component_type": "t-echo", "config": {"value": "{{context.n}}"}},
          S("after", deps=["loop"]))
    asyncio.run(Execution(plan_for(p), {}, gate=gate).execute())
    assert hits == ["1"]
    assert sorted(deep) == ["0/0", "0/1", "1/0", "1/1", "2/0", "2/1"]


def test_nested_iterations_are_all_recorded(probe, repo):
    p = P({"id": "outer", "component_type": "foreach", "config": {"items": [1, 2], "loop_stages": ["inner"]}},
          {"id": "inner", "component_type": "foreach", "config": {"items": ["x", "y"], "loop_stages": ["leaf"]}},
          {"id": "leaf", "component_type": "t-echo", "config": {"value": "{{context.item}}"}})
    run = asyncio.run(Execution(plan_for(p), {}, recorder=repo).execute())
    leaves = [r for r in repo.stage_results(run.id) if r.stage_id == "leaf"]
    assert sorted(r.iteration for r in leaves) == ["0/0", "0/1", "1/0", "1/1"]


def test_a_gate_that_raises_cancellation_stops_the_run(probe):
    async def gate(point: StagePoint) -> None:
        if point.stage.id == "b":
            point.execution.cancel()
            await asyncio.sleep(1)

    ex = Execution(plan_for(P(S("a"), S("b", deps=["a"]), S("c", deps=["b"]))), {}, gate=gate)
    with pytest.raises(Exception):
        asyncio.run(ex.execute())
    assert ex.run.status is RunStatus.CANCELLED
    assert probe.calls["c"] == 0


class Wrapper:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl(wrapper=True)
    def fm_wrap_stage(self, ctx, call):
        inner = yield
        wrapper = self

        async def traced(c):
            wrapper.seen.append(f"before {c.stage.id}")
            out = await inner(c)
            wrapper.seen.append(f"after {c.stage.id}")
            return {**out, "wrapped": True}

        return traced


def test_the_wrap_stage_hook_wraps_every_component_call(probe):
    w = Wrapper()
    plugins.register_plugin(w)
    ex = Execution(plan_for(P(S("a", value=1), S("b", deps=["a"], value="{{upstream.a.wrapped}}"))), {})
    run = asyncio.run(ex.execute())
    assert w.seen == ["before a", "after a", "before b", "after b"]
    assert run.output == {"value": True, "stage": "b", "wrapped": True}


def test_per_execution_wrappers_compose_with_a_cache(probe):
    cache: dict[str, object] = {}

    def caching(ctx, call):
        async def cached(c):
            key = f"{c.stage.id}:{c.config}"
            if key not in cache:
                cache[key] = await call(c)
            return cache[key]
        return cached

    p = P(S("a", value=1))
    for _ in range(3):
        asyncio.run(Execution(plan_for(p), {}, wrappers=[caching]).execute())
    assert probe.calls["a"] == 1


def test_suspend_parks_the_run_unfinished_and_a_resume_continues_after_the_last_finished_stage(probe, repo):
    from flowmason.kernel.components import operator

    state = {"park": True}

    @operator("t-park")
    def park(ctx):
        if state["park"]:
            ctx.suspend("waiting")
        return {"resumed": True}

    p = P(S("a", value=1), S("slow", "t-sleep", seconds=5), {"id": "p", "component_type": "t-park", "depends_on": ["a"]},
          S("c", deps=["p"], value="{{upstream.p.resumed}}"))
    plugins.register_plugin(type("Extra", (), {"fm_register_components": hookimpl(lambda self, register: register(park))})())
    ex = Execution(plan_for(p), {}, recorder=repo)
    run = asyncio.run(ex.execute())
    assert ex.suspended == "waiting" and run.status is RunStatus.RUNNING
    stored = repo.get_run(run.id)
    assert stored.status is RunStatus.RUNNING  # not recorded as finished, nor cancelled
    results = {r.stage_id: r.status for r in repo.stage_results(run.id)}
    assert results == {"a": StageStatus.COMPLETED}  # parked and in-flight stages are not recorded
    state["park"] = False
    p2 = P(S("a", value=1), S("slow", "t-sleep", seconds=0.01), {"id": "p", "component_type": "t-park", "depends_on": ["a"]},
           S("c", deps=["p"], value="{{upstream.p.resumed}}"))
    again = asyncio.run(Execution(plan_for(p2), run=stored, recorder=repo, resume=repo.checkpoint(run.id)).execute())
    assert again.status is RunStatus.COMPLETED
    assert probe.calls["a"] == 1
    assert repo.get_run(run.id).status is RunStatus.COMPLETED


def test_a_host_can_park_a_run_from_outside_at_a_deadline(probe, repo):
    p = P(S("a", value=1), S("b", "t-sleep", deps=["a"], seconds=5))
    ex = Execution(plan_for(p), {}, recorder=repo)

    async def go():
        task = asyncio.ensure_future(ex.execute())
        await asyncio.sleep(0.1)
        ex.suspend("deadline")
        return await task

    run = asyncio.run(go())
    assert ex.suspended == "deadline"
    assert repo.get_run(run.id).status is RunStatus.RUNNING
    assert [r.stage_id for r in repo.stage_results(run.id)] == ["a"]


class Events:
    def __init__(self) -> None:
        self.kinds: list[tuple[str, str | None]] = []

    @hookimpl
    def fm_stage_event(self, kind, run, stage, data):
        self.kinds.append((kind, stage.id if stage is not None else None))


def test_logs_and_stage_starts_reach_the_event_hook_without_listeners(probe):
    from flowmason.kernel.components import operator

    @operator("t-log")
    def logs(ctx):
        ctx.log("info", "hello", n=1)
        ctx.emit("stage.token", "tok")
        return {}

    ev = Events()
    plugins.register_plugin(type("Extra", (), {"fm_register_components": hookimpl(lambda self, register: register(logs))})())
    plugins.register_plugin(ev)
    ex = Execution(plan_for(P({"id": "x", "component_type": "t-log"})), {})
    assert ex.observed
    asyncio.run(ex.execute())
    assert ev.kinds == [("run.started", None), ("stage.started", "x"), ("stage.log", "x"), ("stage.token", "x"),
                        ("stage.finished", "x"), ("run.finished", None)]


def test_the_default_stage_timeout_fails_an_overdue_stage_and_its_retry(probe, monkeypatch):
    # stages without timeout_ms share one watchdog per run instead of a timer each
    from flowmason.kernel import executor
    from flowmason.kernel.errors import StageTimeoutError

    monkeypatch.setattr(executor, "DEFAULT_STAGE_TIMEOUT_S", 0.2)
    p = P(S("quick", "t-sleep", seconds=0.01),
          {"id": "slow", "component_type": "t-sleep", "config": {"seconds": 5}, "depends_on": ["quick"],
           "retry_config": {"max_retries": 1, "initial_delay_ms": 1, "max_delay_ms": 1}})
    ex = Execution(plan_for(p), {})
    with pytest.raises(StageTimeoutError) as info:
        asyncio.run(ex.execute())
    assert info.value.stage == "slow"
    assert probe.calls == {"quick": 1, "slow": 2}  # the retry timed out too
    assert ex.run.status is RunStatus.FAILED


def test_cancelling_a_run_on_the_default_timeout_is_a_cancel_not_a_timeout(probe):
    from flowmason.kernel.errors import RunCancelledError

    ex = Execution(plan_for(P(S("slow", "t-sleep", seconds=5))), {})

    async def go():
        task = asyncio.ensure_future(ex.execute())
        await asyncio.sleep(0.05)
        ex.cancel()
        return await task

    with pytest.raises(RunCancelledError):
        asyncio.run(go())
    assert ex.run.status is RunStatus.CANCELLED
