"""Expression bounds: every way to make one expression huge or slow stops with the limit it hit, named.

The attack expressions are acceptance finding 4d and their relatives
(string methods with a width, joins, repetition, nested comprehensions, C
loops, big integers, format widths, text of huge containers, list growth).
Each must stop quickly with an ``ExpressionLimit`` that names the limit;
through a run, the error names the stage and the config field. Ordinary
expressions keep working, and a slow but legal one finishes off the event
loop on the expression thread.
"""
from __future__ import annotations

import asyncio

import pytest

from flowmason.kernel import bounds, plugins, templating
from flowmason.kernel.bounds import ExpressionLimit
from flowmason.kernel.errors import TemplateError
from flowmason.kernel.executor import run_pipeline
from flowmason.kernel.model import parse_pipeline
from flowmason.kernel.templating import evaluate

# expression -> the limit it hits (or limits, space-separated; kept in step with tests/security/test_expression_attacks.py, which imports it)
BOMBS = {
    "len('x'.ljust(10**9))": "size",
    "len('x'.rjust(10**9))": "size",
    "len('x'.center(10**9))": "size",
    "len('x'.zfill(10**9))": "size",
    "len(('\\t' * 1000).expandtabs(10**6))": "size",
    "len(('a' * 100000).replace('a', 'a' * 100000))": "size",
    "len(''.join(['x' * 100000] * 10000))": "size",
    "len(join(['x' * 100000] * 10000))": "size",
    "len([[1] * 100000 for i in range(2000)])": "memory",
    "sum([sum(range(100000)) for i in range(10000)])": "work time",  # whichever comes first on a busy machine
    "len(sum([[1] * 1000 for i in range(1000)], []))": "work",
    "len(f'{1:>1000000000}')": "size",
    "len('%1000000000d' % 1)": "size",
    "len(str([('x' * 100000,) * 100000]))": "size",
    "len(to_json(['x' * 100000] * 100000))": "size",
    "9 ** 4000000": "size",
    "(2 ** 999999) * (2 ** 999999)": "size",
    "[('x' * 100000)] * 100000": "result",
    "len([l.extend(l) for l in [[1]] for i in range(40)])": "size",
    "[l.append(l) or l for l in [[1]]]": "time",  # a list holding itself: every walk over it ends at a limit
}


@pytest.mark.parametrize("expression", sorted(BOMBS))
def test_each_bomb_stops_at_its_limit(expression):
    with pytest.raises(ExpressionLimit) as info:
        evaluate(expression, {})
    assert info.value.limit in BOMBS[expression].split(), info.value.message
    assert info.value.message.startswith("'{{") and " stopped: " in info.value.message and info.value.hint


def test_the_time_limit_is_a_setting(monkeypatch):
    monkeypatch.setenv("FM_EXPR_MAX_SECONDS", "0.05")
    monkeypatch.setattr(templating, "_seconds", [1.0, -1.0])  # read the setting again now
    with pytest.raises(ExpressionLimit) as info:
        evaluate("sum([sum(range(50000)) for i in range(300)])", {})
    assert info.value.limit == "time" and "0.05 s" in info.value.message and "FM_EXPR_MAX_SECONDS" in info.value.hint


def test_ordinary_expressions_and_big_upstream_data_still_work():
    big = {"items": [{"ok": i % 2 == 0, "n": i} for i in range(50_000)]}
    scope = {"upstream": {"fetch": big}, "input": {"x": None, "topic": "t" * 200_000}}
    assert evaluate("input.x or 'default'", scope) == "default"
    assert evaluate("len([r for r in upstream.fetch['items'][:5000] if r.get('ok')])", scope) == 2500
    assert evaluate("upstream.fetch.get('items')[-1]['n']", scope) == 49_999  # an existing value, not one built
    assert evaluate("len(input.topic.upper())", scope) == 200_000
    assert evaluate("'-'.join(['a', 'b'])", scope) == "a-b" and evaluate("join([1, 2], '+')", scope) == "1+2"
    assert evaluate("sum(range(100000))", scope) == 4_999_950_000  # past the fast path: finished in full
    with pytest.raises(TemplateError):
        evaluate("json([1], indent=1000)", scope)


def _one_stage(value: str):
    return parse_pipeline({"name": "bounds", "stages": [
        {"id": "bomb", "component_type": "variable-set", "config": {"name": "v", "value": value}}]})


def test_through_a_run_the_error_names_the_stage_the_field_and_the_limit():
    plugins.reset()
    with pytest.raises(ExpressionLimit) as info:
        asyncio.run(run_pipeline(_one_stage("{{len('x'.ljust(10**9))}}"), {}))
    err = info.value
    assert (err.stage, err.field, err.limit) == ("bomb", "config.value", "size")
    assert "str.ljust(1,000,000,000)" in err.message


def test_a_slow_legal_expression_is_finished_off_the_event_loop(monkeypatch):
    plugins.reset()
    used = []

    async def counting(render, scope):
        used.append(render.source)
        return await templating.render_off_loop(render, scope)

    monkeypatch.setattr("flowmason.kernel.executor.render_off_loop", counting)
    run = asyncio.run(run_pipeline(_one_stage("{{sum(range(100000))}}"), {}))
    assert run.status.value == "completed" and run.output["variables"]["v"] == 4_999_950_000
    assert used == [({"name": "v", "value": "{{sum(range(100000))}}"}, "config")]  # the fast path handed it off
    used.clear()
    asyncio.run(run_pipeline(_one_stage("{{input.x or 'default'}}"), {"x": 1}))
    assert used == []  # ordinary expressions stay on the fast path
    assert bounds.INLINE_WORK < 100_000 <= bounds.MAX_WORK


@pytest.fixture(params=["thread", "process"])
def off_loop(request):
    """Where slow expressions finish: the expression thread (fm run), or the process a server starts."""
    if request.param == "process":
        templating.prepare_off_loop()
        assert templating._pools["process"] is not None
    yield request.param
    pool = templating._pools.pop("process", None)
    if pool is not None:
        pool.shutdown()


def test_off_the_loop_a_bomb_fails_the_same_and_env_reads_stay_masked(off_loop, monkeypatch):
    monkeypatch.setenv("FM_VAR_TOKEN", "s3cret-token")
    plugins.reset()
    with pytest.raises(ExpressionLimit) as info:  # past the fast path, then the size limit in the other process
        asyncio.run(run_pipeline(_one_stage("{{len(str(list(range(100000))) + 'x'.ljust(10**9))}}"), {}))
    assert (info.value.stage, info.value.field, info.value.limit) == ("bomb", "config.value", "size")
    p = _one_stage("{{env.FM_VAR_TOKEN + str(sum(range(100000)))}}")
    events = []
    run = asyncio.run(run_pipeline(p, {}, listeners=[lambda kind, run, stage, data: events.append((kind, data))]))
    assert run.output["variables"]["v"] == "s3cret-token4999950000"
    started = [data for kind, data in events if kind == "stage.started"]
    assert started and "s3cret-token" not in str(started)  # the value read off the loop is masked like any other
