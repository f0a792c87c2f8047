"""Compile a pipeline once: resolve components, check the graph, compile templates.

A ``Plan`` is what the executor runs and what ``fm validate`` reports on.
Everything that can be decided before a run is decided here, once per
pipeline, so that the per-stage path does no lookups, parsing or hook
calls. Validation collects every problem (unknown component, unknown or
self dependency, cycle, reference to a stage that is not upstream,
unreachable stage, config that does not match the component's schema,
required config missing (or none of its aliases, ``anyOf`` of ``required``),
unknown template names and output fields: kernel/refcheck.py, a misspelt
key: ``keys.py``) with the stage and field it concerns and how to fix it.
In an abstract base what a pipeline extending it can supply (a placeholder
stage of ``component_type: "abstract"``, missing required config) is a warning.

Two entry points:

- ``compile_plan(pipeline, components) -> Plan`` compiles, or raises
  ``PipelineValidationError`` listing every problem.
- ``compile_cached(pipeline, components) -> Plan`` is the same, answered from
  a bounded LRU (128 plans) keyed by the pipeline's *content* (a blake2b
  digest of ``pipeline.model_dump_json()``, 1.5 µs a stage) and the
  identity of ``components``. A pipeline edited in place gets a new plan;
  an equal pipeline loaded again (another object) gets the cached one. The
  components mapping is keyed by identity because a registry never changes
  once built (``plugins.reset`` and ``register_plugin`` build a new one).
  Failed compiles are not cached. This is the one for entry points that run
  pipelines; a cached plan is shared by every run of that content, so
  nothing may change it.

Compiling is linear in stages, dependencies and references (a 20,000-stage
chain compiles in a fraction of a second; it used to take a minute): one
iterative depth-first walk finds the dependency order and any cycle, and
"is ``upstream.X`` really upstream of this stage" is answered from the
stage's own dependencies in the common case; only the references that are
not (a stage reading a stage two or more hops back) go to one pass in
dependency order over bitsets of the referenced stages.
"""
from __future__ import annotations

import gc
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Callable, Mapping

from .components import Component
from .errors import (
    ComponentNotFoundError,
    FlowMasonError,
    PipelineValidationError,
    TemplateError,
)
from .keys import check_keys
from .model import Pipeline, Stage
from .redaction import needs_redaction
from .templating import compile_value, references


# what an abstract base writes for a stage its children must supply
ABSTRACT_STAGE = "abstract"


@dataclass
class StagePlan:
    stage: Stage
    component: Component
    render: Callable[[Mapping[str, Any]], dict[str, Any]]
    lazy: dict[str, Any]
    deps: list[str]  # effective dependencies inside the graph that runs it
    owner: str | None = None  # control-flow stage that runs this one itself
    gate: str | None = None  # control-flow stage that decides whether this one runs
    timeout_s: float | None = None
    sync_ok: bool = False  # plain function, no retries: the executor may call it inline
    redact: bool = False  # config holds secrets: mask it in records and events


@dataclass
class Plan:
    pipeline: Pipeline
    stages: dict[str, StagePlan]
    main: list[str]  # stages the main graph schedules (not owned), in file order
    dependents: dict[str, list[str]] = field(default_factory=dict)
    sinks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def graph(self) -> dict[str, list[str]]:
        """Stage id -> what it waits for, in file order (recorded with each run for `fm runs show`).

        A loop or try body stage lists its owner as ``in:OWNER``, so views can nest it there.
        """
        return {sid: list(sp.deps) + ([f"in:{sp.owner}"] if sp.owner else []) for sid, sp in self.stages.items()}

    @property
    def name(self) -> str:
        return self.pipeline.key


class _Problems(list):
    """The problems found so far, each naming the pipeline, stage and field."""

    def __init__(self, pipeline: str, abstract: bool = False) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.abstract = abstract
        self.deferred: list[str] = []  # deferrable problems of an abstract base, reported as warnings

    def add(self, msg: str, stage: str | None = None, fld: str | None = None, hint: str | None = None,
            deferrable: bool = False) -> None:
        """``deferrable``: something a pipeline extending this one can supply (a warning in an abstract base)."""
        if deferrable and self.abstract:
            self.deferred.append(f"stage '{stage}': {msg} (a pipeline extending this abstract base must provide it)")
            return
        self.append(FlowMasonError(msg, pipeline=self.pipeline, stage=stage, field=fld, hint=hint))


def compile_plan(pipeline: Pipeline, components: Mapping[str, Component]) -> Plan:
    """Check and compile ``pipeline``; raises PipelineValidationError listing every problem."""
    # A compile makes a few long-lived objects per stage and no garbage cycles;
    # on a large pipeline the collector's full passes over that growing heap
    # cost as much as the compile itself (measured: 20,000 stages, 680 -> 320 ms of CPU).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _compile(pipeline, components)
    finally:
        if collecting:
            gc.enable()


def _compile(pipeline: Pipeline, components: Mapping[str, Component]) -> Plan:
    problems = _Problems(pipeline.key, pipeline.abstract)
    # one settings dict per stage (by position: ids may repeat), shared by every check below
    settings = [st.settings() for st in pipeline.stages]
    ids = _index_stages(pipeline, problems)
    comps = _resolve_components(pipeline, components, problems)
    notes: list[str] = []  # warnings found on the way
    check_keys(pipeline.stages, settings, comps, problems.add, notes.append)
    owner, gate = _governance(pipeline, ids, comps, problems)
    deps = _dependencies(pipeline, ids, gate, problems)
    order, cycle = _dependency_order(list(ids), deps)
    if cycle:
        problems.add(
            "dependency cycle: " + " -> ".join(cycle), stage=cycle[0], fld="depends_on",
            hint="remove one of these dependencies so the graph has no loop",
        )
    _check_body_dependencies(pipeline, deps, owner, problems)
    if not cycle:  # "upstream" means nothing in a loop
        _check_references(pipeline, settings, ids, deps, owner, order, problems)
    if pipeline.output_stage_id and pipeline.output_stage_id not in ids:
        problems.add(
            f"output_stage_id names unknown stage '{pipeline.output_stage_id}'", fld="output_stage_id",
            hint="set it to the id of the stage whose output is the pipeline's result",
        )
    plans = _stage_plans(pipeline, ids, settings, comps, deps, owner, gate, problems)
    if problems:
        raise PipelineValidationError(list(problems), pipeline=problems.pipeline)
    plan = _assemble(pipeline, ids, plans, deps, owner)
    plan.warnings[:0] = problems.deferred + notes
    return plan


# -- graph checks --

def _index_stages(pipeline: Pipeline, problems: _Problems) -> dict[str, Stage]:
    if not pipeline.stages:
        problems.add("the pipeline has no stages", fld="stages", hint="add at least one stage")
    ids: dict[str, Stage] = {}
    for i, st in enumerate(pipeline.stages):
        if st.id in ids:
            problems.add(f"duplicate stage id '{st.id}'", stage=st.id, fld=f"stages[{i}].id",
                         hint="give every stage a unique id")
        ids[st.id] = st
    return ids


def _resolve_components(
    pipeline: Pipeline, components: Mapping[str, Component], problems: _Problems,
) -> dict[str, Component]:
    comps: dict[str, Component] = {}
    hints: dict[str, str | None] = {}  # one close-match search per unknown type, not per stage
    for st in pipeline.stages:
        comp = components.get(st.component_type)
        if comp is not None:
            comps[st.id] = comp
            continue
        if st.component_type == ABSTRACT_STAGE:
            problems.add("an abstract placeholder stage (component_type 'abstract')", stage=st.id,
                         fld="component_type", deferrable=True,
                         hint="a pipeline that extends this one must override it with a real component")
            continue
        if st.component_type not in hints:
            hints[st.component_type] = _close_component(st.component_type, components)
        problems.append(
            ComponentNotFoundError(
                f"unknown component type '{st.component_type}'",
                pipeline=problems.pipeline, stage=st.id, field="component_type", hint=hints[st.component_type],
            )
        )
    return comps


def _close_component(name: str, components: Mapping[str, Component]) -> str | None:
    try:
        import difflib

        close = difflib.get_close_matches(name, list(components), n=1)
        return f"did you mean '{close[0]}'?" if close else "`fm plugins` lists the available components"
    except Exception:  # pragma: no cover
        return None


def _governance(
    pipeline: Pipeline, ids: dict[str, Stage], comps: dict[str, Component], problems: _Problems,
) -> tuple[dict[str, str], dict[str, str]]:
    """Stages owned (run inside) and gated (decided on) by control-flow stages: (owner, gate) by stage id."""
    owner: dict[str, str] = {}
    gate: dict[str, str] = {}
    known = ", ".join(islice(ids, 8))
    for st in pipeline.stages:
        comp = comps.get(st.id)
        if comp is None or not comp.governs:
            continue
        table = owner if comp.owns else gate
        for key in comp.governs:
            for gid in comp.governed_stages({key: st.config.get(key)}):
                if gid not in ids:
                    problems.add(f"'{key}' names unknown stage '{gid}'", stage=st.id, fld=f"config.{key}",
                                 hint=f"use one of the stage ids: {known}")
                    continue
                if gid == st.id:
                    problems.add(f"'{key}' names the stage itself", stage=st.id, fld=f"config.{key}")
                    continue
                if gid in table and table[gid] != st.id:
                    problems.add(
                        f"stage '{gid}' is governed by both '{table[gid]}' and '{st.id}'",
                        stage=gid, hint="a stage can belong to one control-flow component only",
                    )
                table[gid] = st.id
    return owner, gate


def _dependencies(
    pipeline: Pipeline, ids: dict[str, Stage], gate: dict[str, str], problems: _Problems,
) -> dict[str, list[str]]:
    """Each stage's known dependencies, once each, in file order; a gated stage also waits for its gate."""
    deps: dict[str, list[str]] = {}
    for st in pipeline.stages:
        ds: list[str] = []
        seen: set[str] = set()  # a join may list thousands of stages: no list scans
        for i, d in enumerate(st.depends_on):
            if d == st.id:
                problems.add("a stage cannot depend on itself", stage=st.id, fld=f"depends_on[{i}]", hint="remove it")
            elif d not in ids:
                problems.add(f"depends on unknown stage '{d}'", stage=st.id, fld=f"depends_on[{i}]",
                             hint="fix the id or add that stage")
            elif d not in seen:
                seen.add(d)
                ds.append(d)
        g = gate.get(st.id)
        if g is not None and g not in seen:
            ds.append(g)
        deps[st.id] = ds
    return deps


def _dependency_order(nodes: list[str], deps: dict[str, list[str]]) -> tuple[list[str], list[str] | None]:
    """(every stage after all it waits for, the first dependency cycle or None).

    A depth-first walk along dependencies from each stage in file order,
    with an explicit stack (a 50,000-stage chain would overflow Python's
    recursion limit). Its post-order is a dependency order; the cycle is
    the walk's path from the stage met twice, e.g. ``[a, c, b, a]``.
    """
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(nodes, WHITE)
    order: list[str] = []
    for root in nodes:
        if colour[root] != WHITE:
            continue
        colour[root] = GREY
        path = [root]
        todo = [iter(deps.get(root, ()))]
        while todo:
            for d in todo[-1]:
                c = colour.get(d)
                if c == GREY:
                    return order, path[path.index(d):] + [d]
                if c == WHITE:
                    colour[d] = GREY
                    path.append(d)
                    todo.append(iter(deps.get(d, ())))
                    break
            else:  # every dependency of path[-1] is done
                todo.pop()
                n = path.pop()
                colour[n] = BLACK
                order.append(n)
    return order, None


def _check_body_dependencies(
    pipeline: Pipeline, deps: dict[str, list[str]], owner: dict[str, str], problems: _Problems,
) -> None:
    """A stage outside a loop/try body cannot depend on a stage inside it."""
    if not owner:
        return
    for st in pipeline.stages:
        own = owner.get(st.id)
        for d in deps.get(st.id, ()):
            body = owner.get(d)
            if body is not None and own != body and st.id != body:
                if own is None or not _owned_within(owner, st.id, body):
                    problems.add(
                        f"unreachable: depends on '{d}', which only runs inside '{body}'",
                        stage=st.id, fld="depends_on", hint=f"depend on '{body}' instead and read its results",
                    )


def _owned_within(owner: dict[str, str], sid: str, container: str) -> bool:
    cur = owner.get(sid)
    seen = 0
    while cur is not None and seen < 1000:  # bounded: ownership may loop in an invalid file
        if cur == container:
            return True
        cur = owner.get(cur)
        seen += 1
    return False


def _check_references(
    pipeline: Pipeline, settings: list[dict[str, Any]], ids: dict[str, Stage], deps: dict[str, list[str]],
    owner: dict[str, str], order: list[str], problems: _Problems,
) -> None:
    """``upstream.<id>`` must name a known stage that runs before this one.

    "Before" is: an ancestor of the stage, or, inside a loop/try body, an
    ancestor of the body's owner or a stage of the same body. Most references
    name a direct dependency and are settled at once; the rest are answered
    together by ``_ancestor_queries``, then reported in file order.
    """
    pos = {sid: i for i, sid in enumerate(order)}
    bodies: dict[str, set[str]] = {}
    for sid, own in owner.items():
        bodies.setdefault(own, set()).add(sid)
    dep_sets: dict[str, set[str]] = {}

    def waits_for(sid: str) -> set[str]:
        if sid not in dep_sets:
            dep_sets[sid] = set(deps.get(sid, ()))
        return dep_sets[sid]

    def settled(sid: str, target: str) -> bool | None:
        """True/False when cheap to tell, None when it needs the ancestor pass."""
        if target == sid or target in waits_for(sid):
            return True
        own = owner.get(sid)
        if own is not None and (target in bodies[own] or target in waits_for(own)):
            return True
        # ancestors come earlier in the dependency order
        if pos[target] > pos[sid] and (own is None or pos[target] > pos[own]):
            return False
        return None

    found: list[tuple[str, str, bool | None]] = []  # (stage, target, verdict) in file order
    queries: list[tuple[str, str]] = []
    for st, conf in zip(pipeline.stages, settings):
        for ref in references(conf):
            if ref[0] != "upstream" or len(ref) < 2:
                continue
            target = ref[1]
            if target not in ids:
                found.append((st.id, target, None))
                continue
            verdict = settled(st.id, target)
            if verdict is None:
                queries.append((st.id, target))
                own = owner.get(st.id)
                if own is not None:
                    queries.append((own, target))
            found.append((st.id, target, verdict))
    answers = iter(_ancestor_queries(queries, deps, order))
    for sid, target, verdict in found:
        if target not in ids:
            problems.add(f"references unknown stage 'upstream.{target}'", stage=sid, fld="config",
                         hint="fix the stage id in the {{upstream...}} reference")
            continue
        if verdict is None:  # answers come in the order the queries were asked
            verdict = next(answers)
            if owner.get(sid) is not None:
                verdict = next(answers) or verdict
        if not verdict:
            problems.add(f"references 'upstream.{target}' but does not depend on it",
                         stage=sid, fld="depends_on", hint=f"add '{target}' to depends_on")


def _ancestor_queries(queries: list[tuple[str, str]], deps: dict[str, list[str]], order: list[str]) -> list[bool]:
    """For each (stage, target): does the stage wait for target, directly or through others?

    One pass in dependency order; each stage carries the set of *queried*
    targets among its ancestors as the bits of an int, and a stage's set is
    dropped once every stage waiting for it has read it. Time is the number
    of dependencies times the queried targets / 64, memory the width of the
    graph: a plain chain with no such references does no work here.
    """
    if not queries:
        return []
    bit: dict[str, int] = {}
    for _, target in queries:
        if target not in bit:
            bit[target] = 1 << len(bit)
    asked: dict[str, list[int]] = {}
    for i, (sid, _) in enumerate(queries):
        asked.setdefault(sid, []).append(i)
    readers = dict.fromkeys(order, 0)  # dependents that have not read a stage's set yet
    for sid in order:
        for d in deps[sid]:
            readers[d] += 1
    live: dict[str, int] = {}
    answers = [False] * len(queries)
    for sid in order:
        above = 0
        for d in deps[sid]:
            above |= live[d] | bit.get(d, 0)
            readers[d] -= 1
            if not readers[d]:
                del live[d]
        for i in asked.get(sid, ()):
            answers[i] = bool(above & bit[queries[i][1]])
        if readers[sid]:
            live[sid] = above
    return answers


# -- per stage: templates and config schemas --

def _stage_plans(
    pipeline: Pipeline, ids: dict[str, Stage], settings: list[dict[str, Any]], comps: dict[str, Component],
    deps: dict[str, list[str]],
    owner: dict[str, str], gate: dict[str, str], problems: _Problems,
) -> dict[str, StagePlan]:
    from .refcheck import OutputSchemas, check_stage

    plans: dict[str, StagePlan] = {}
    schemas = _Schemas()
    outputs = OutputSchemas(ids, comps)
    eager: list[Any] = []  # one stage's expressions at a time (reused: no two lists per stage)
    lazy_exprs: list[Any] = []  # its lazy keys' expressions, checked with the names the component adds
    for st, conf in zip(pipeline.stages, settings):
        comp = comps.get(st.id)
        if comp is None:
            continue
        if comp.config_schema:
            _check_config(st, comp, problems.add, conf, schemas)
        eager.clear()
        lazy_exprs.clear()
        try:
            render, lazy = _config_renderer(st, comp, conf, eager, lazy_exprs)
        except TemplateError as exc:
            problems.append(FlowMasonError(exc.message, pipeline=problems.pipeline, stage=st.id, field="config",
                                           hint=exc.hint))
            continue
        if eager or lazy_exprs:
            check_stage(st, comp, conf, eager, lazy_exprs, outputs, problems.add)
        plans[st.id] = StagePlan(
            stage=st, component=comp, render=render, lazy=lazy, deps=deps.get(st.id, []),
            owner=owner.get(st.id), gate=gate.get(st.id),
            timeout_s=st.timeout_ms / 1000 if st.timeout_ms else None,
            sync_ok=not comp.is_async and not (st.retry_config and st.retry_config.max_retries),
            redact=needs_redaction(conf),
        )
    return plans


def _config_renderer(
    stage: Stage, comp: Component, settings: dict[str, Any], sink: list[Any] | None = None,
    lazy_sink: list[Any] | None = None,
) -> tuple[Callable, dict[str, Any]]:
    lazy = {k: settings[k] for k in comp.lazy if k in settings}
    eager = {k: v for k, v in settings.items() if k not in lazy} if lazy else settings
    try:
        render, _ = compile_value(eager, sink, where="config")
        if lazy and lazy_sink is not None:
            compile_value(lazy, lazy_sink)  # only to check them: the component renders them itself
    except TemplateError as exc:
        exc.stage = stage.id
        raise
    return render, lazy


def _assemble(
    pipeline: Pipeline, ids: dict[str, Stage], plans: dict[str, StagePlan], deps: dict[str, list[str]],
    owner: dict[str, str],
) -> Plan:
    main = [s.id for s in pipeline.stages if s.id not in owner]
    dependents: dict[str, list[str]] = {sid: [] for sid in ids}
    for sid, ds in deps.items():
        for d in ds:
            dependents[d].append(sid)
    main_set = set(main)
    sinks = [sid for sid in main if not any(x in main_set for x in dependents[sid])]
    warnings = [
        f"stage '{st.id}' depends on disabled stage '{d}' and will be skipped"
        for st in pipeline.stages for d in deps.get(st.id, ()) if d in ids and not ids[d].enabled
    ]
    return Plan(pipeline=pipeline, stages=plans, main=main, dependents=dependents, sinks=sinks, warnings=warnings)


def _check_config(
    st: Stage, comp: Component, problem: Callable[..., None], settings: dict[str, Any], schemas: _Schemas,
) -> None:
    """Check the literal parts of a config against the component's JSON schema."""
    schema = comp.config_schema or {}
    for key in schema.get("required", []):
        if key not in settings:
            problem(
                f"missing required config '{key}' for component '{comp.name}'", stage=st.id,
                fld=f"config.{key}", hint=f"add \"{key}\" to the stage's config", deferrable=True,
            )
    # `anyOf: [{required: [a]}, {required: [b]}]`: one of several names (an alias) must be given
    options = [o.get("required") for o in schema.get("anyOf", ()) if isinstance(o, dict) and o.get("required")]
    if options and not any(all(k in settings for k in keys) for keys in options):
        names = " or ".join(f"'{keys[0]}'" if len(keys) == 1 else "+".join(keys) for keys in options)
        problem(
            f"missing required config {names} for component '{comp.name}'", stage=st.id,
            fld=f"config.{options[0][0]}", hint=f"add \"{options[0][0]}\" to the stage's config", deferrable=True,
        )
    props = schema.get("properties", {})
    for key, value in settings.items():
        sub = props.get(key)
        if sub is None or _has_template(value):
            continue
        err = schemas.get(sub).first_error(value)
        if err:
            problem(
                f"config '{key}' {err}", stage=st.id, fld=f"config.{key}",
                hint=f"see `fm schema --component {comp.name}`",
            )


class _Schemas:
    """A component's config sub-schemas, compiled once per compile rather than once per stage.

    ``compile_schema`` caches by the schema's JSON text, which costs a
    sorted dump per call; the sub-schema objects live on the components,
    so their ids are stable for the length of one compile.
    """

    def __init__(self) -> None:
        self._by_id: dict[int, Any] = {}

    def get(self, sub: dict[str, Any]) -> Any:
        compiled = self._by_id.get(id(sub))
        if compiled is None:
            from .schemas import compile_schema

            compiled = self._by_id[id(sub)] = compile_schema(sub)
        return compiled


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False

# -- the content cache --

_CACHE_SIZE = 128
_cache: "OrderedDict[tuple[str, int], tuple[Mapping[str, Component], Plan]]" = OrderedDict()
_cache_lock = threading.Lock()  # the HTTP API may compile from several threads


def content_key(pipeline: Pipeline) -> str:
    """A digest of everything the pipeline says: changes when any stage, field or extra key changes.

    Fields left at their default are left out of the dump (a third of the
    text, 30% less time); a field set to anything else is in it.
    """
    text = pipeline.model_dump_json(exclude_defaults=True)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def compile_cached(pipeline: Pipeline, components: Mapping[str, Component]) -> Plan:
    """``compile_plan``, once per pipeline content and components mapping (LRU of 128 plans)."""
    try:
        key = (content_key(pipeline), id(components))
    except ValueError:  # a value pydantic cannot dump (set in code, not read from JSON): no key, no cache
        return compile_plan(pipeline, components)
    with _cache_lock:
        entry = _cache.get(key)
        if entry is not None and entry[0] is components:
            _cache.move_to_end(key)
            plan: Plan | None = entry[1]
        else:
            plan = None
    # The plan holds the pipeline it was compiled from; when that is another
    # object, it may have been edited since: check it still says the same.
    if plan is not None and (plan.pipeline is pipeline or content_key(plan.pipeline) == key[0]):
        return plan
    plan = compile_plan(pipeline, components)
    with _cache_lock:
        _cache[key] = (components, plan)  # holding `components` keeps its id from being reused
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return plan


def clear_plan_cache() -> None:
    with _cache_lock:
        _cache.clear()
