"""compile_plan at scale: linear work, no recursion limit, references checked exactly.

No timed assertions here (budgets live in bench/): the tests count the work
the graph steps do and compare the upstream check with the definition.
"""
from __future__ import annotations

import random

import pytest

from flowmason.kernel import plan as planmod
from flowmason.kernel.errors import PipelineValidationError
from flowmason.kernel.model import parse_pipeline
from flowmason.kernel.plan import compile_plan


@pytest.fixture
def components(probe):
    from flowmason.kernel import plugins

    return plugins.get_registry().components


def chain(n, *, reverse=False, ref=lambda i: i - 1):
    stages = [{"id": "s0", "type": "t-echo", "config": {"value": "{{input.x}}"}}]
    stages += [{"id": f"s{i}", "type": "t-echo", "depends_on": [f"s{i - 1}"],
                "config": {"value": f"{{{{upstream.s{ref(i)}.value}}}}"}} for i in range(1, n)]
    return parse_pipeline({"id": f"chain-{n}", "stages": stages[::-1] if reverse else stages})


class CountingDeps(dict):
    """A dependency table that counts how often the graph steps read it."""

    reads = 0

    def __getitem__(self, key):
        self.reads += 1
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.reads += 1
        return super().get(key, default)


@pytest.mark.parametrize("n", [1_000, 4_000])
def test_dependency_order_reads_each_stage_once(n):
    deps = CountingDeps({f"s{i}": [f"s{i - 1}"] if i else [] for i in range(n)})
    order, cycle = planmod._dependency_order(list(deps)[::-1], deps)  # the walk goes n deep
    assert cycle is None and order == [f"s{i}" for i in range(n)]
    assert deps.reads == n


@pytest.mark.parametrize("n", [1_000, 4_000])
def test_far_references_take_one_pass(n):
    # every stage reads s0, which it reaches only through the whole chain
    deps = CountingDeps({f"s{i}": [f"s{i - 1}"] if i else [] for i in range(n)})
    order = [f"s{i}" for i in range(n)]
    queries = [(f"s{i}", "s0") for i in range(2, n)] + [("s5", "s9")]
    answers = planmod._ancestor_queries(queries, deps, order)
    assert answers == [True] * (n - 2) + [False]
    assert deps.reads <= 2 * n


def test_20000_stage_chain_written_last_stage_first_compiles(components):
    # the dependency walk goes 20,000 deep: far past Python's recursion limit
    plan = compile_plan(chain(20_000, reverse=True), components)
    assert len(plan.stages) == 20_000 and plan.sinks == ["s19999"] and plan.main[0] == "s19999"
    assert plan.stages["s19999"].deps == ["s19998"]


def test_long_chain_reading_the_first_stage_compiles(components):
    plan = compile_plan(chain(5_000, ref=lambda i: 0), components)
    assert plan.stages["s4999"].deps == ["s4998"]


def test_reference_to_a_later_stage_of_a_long_chain_is_reported(components):
    p = chain(5_000, ref=lambda i: i - 1 if i != 10 else 4_000)
    with pytest.raises(PipelineValidationError) as ei:
        compile_plan(p, components)
    (problem,) = ei.value.problems
    assert problem.stage == "s10" and "upstream.s4000" in problem.message


def test_a_long_cycle_is_named_without_recursion(components):
    stages = [{"id": f"s{i}", "type": "t-echo", "depends_on": [f"s{(i + 1) % 5000}"]} for i in range(5_000)]
    with pytest.raises(PipelineValidationError) as ei:
        compile_plan(parse_pipeline({"id": "loop", "stages": stages}), components)
    (problem,) = ei.value.problems
    assert problem.message.startswith("dependency cycle: s0 -> s1 -> s2") and problem.message.endswith("s4999 -> s0")


def _upstream_by_definition(stages, owner):
    """What compile_plan accepts for `upstream.X` in stage S, computed the slow, obvious way."""
    deps = {s["id"]: list(s.get("depends_on", [])) for s in stages}

    def ancestors(sid):
        seen, todo = set(), list(deps.get(sid, ()))
        while todo:
            d = todo.pop()
            if d not in seen:
                seen.add(d)
                todo.extend(deps.get(d, ()))
        return seen

    def allowed(sid):
        anc = ancestors(sid)
        own = owner.get(sid)
        if own:
            anc |= ancestors(own) | {x for x, o in owner.items() if o == own}
        return anc | {sid}

    return allowed


@pytest.mark.parametrize("seed", range(40))
def test_upstream_check_matches_its_definition(components, seed):
    rng = random.Random(seed)
    n = rng.randint(5, 60)
    stages = []
    for i in range(n):
        deps = sorted({f"s{rng.randrange(i)}" for _ in range(rng.randint(0, 3))}) if i else []
        stages.append({"id": f"s{i}", "type": "t-echo", "depends_on": deps})
    # one loop owning a few stages that nothing outside depends on
    owner = {}
    if n > 10 and seed % 2:
        loop = f"s{n - 1}"
        body = [f"s{i}" for i in range(n - 4, n - 1)]
        stages[n - 1] = {"id": loop, "type": "foreach", "depends_on": stages[n - 1]["depends_on"],
                         "config": {"items": [1], "loop_stages": body}}
        for sid in body:
            owner[sid] = loop
        for st in stages:
            if st["id"] not in body and st["id"] != loop:
                st["depends_on"] = [d for d in st["depends_on"] if d not in body]
    refs = {}
    for st in stages:
        if st["type"] == "t-echo":
            refs[st["id"]] = [f"s{rng.randrange(n)}" for _ in range(rng.randint(0, 3))]
            # a field each target has: the loop's output is closed and has no `value`
            st["config"] = {"value": " ".join(f"{{{{upstream.{r}.{'results' if owner and r == f's{n - 1}' else 'value'}}}}}"
                                              for r in refs[st["id"]])}
    allowed = _upstream_by_definition(stages, owner)
    expected = [(sid, r) for sid, rs in refs.items() for r in rs if r not in allowed(sid)]
    try:
        compile_plan(parse_pipeline({"id": "r", "stages": stages}), components)
        found = []
    except PipelineValidationError as exc:
        found = [(p.stage, p.message.split("'upstream.")[1].split("'")[0]) for p in exc.problems
                 if "does not depend on it" in p.message]
        assert len(found) == len(exc.problems), [str(p) for p in exc.problems]
    assert found == expected
