"""Compile a pipeline once: resolve components, check the graph, compile templates.

A ``Plan`` is what the executor runs and what ``fm validate`` reports on.
Everything that can be decided before a run is decided here, once per
pipeline, so that the per-stage path does no lookups, parsing or hook
calls. Validation collects every problem (unknown component, unknown or
self dependency, cycle, reference to a stage that is not upstream,
unreachable stage, config that does not match the component's schema)
with the stage and field it concerns and how to fix it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .components import Component
from .errors import (
    ComponentNotFoundError,
    FlowMasonError,
    PipelineValidationError,
    TemplateError,
)
from .model import Pipeline, Stage
from .redaction import needs_redaction
from .templating import compile_value, references


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


def _config_renderer(stage: Stage, comp: Component) -> tuple[Callable, dict[str, Any]]:
    settings = stage.settings()
    lazy = {k: settings[k] for k in comp.lazy if k in settings}
    eager = {k: v for k, v in settings.items() if k not in lazy} if lazy else settings
    try:
        render, _ = compile_value(eager)
    except TemplateError as exc:
        exc.stage = stage.id
        raise
    return render, lazy


def _find_cycle(nodes: list[str], deps: dict[str, list[str]]) -> list[str] | None:
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {n: WHITE for n in nodes}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        colour[n] = GREY
        stack.append(n)
        for d in deps.get(n, ()):
            if d not in colour:
                continue
            if colour[d] == GREY:
                return stack[stack.index(d):] + [d]
            if colour[d] == WHITE:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        colour[n] = BLACK
        return None

    for n in nodes:
        if colour[n] == WHITE:
            found = visit(n)
            if found:
                return found
    return None


def _ancestors(sid: str, deps: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(deps.get(sid, ()))
    while todo:
        d = todo.pop()
        if d in seen:
            continue
        seen.add(d)
        todo.extend(deps.get(d, ()))
    return seen


def compile_plan(pipeline: Pipeline, components: Mapping[str, Component]) -> Plan:
    """Check and compile ``pipeline``; raises PipelineValidationError listing every problem."""
    name = pipeline.key
    problems: list[FlowMasonError] = []

    def problem(msg: str, stage: str | None = None, fld: str | None = None, hint: str | None = None) -> None:
        problems.append(FlowMasonError(msg, pipeline=name, stage=stage, field=fld, hint=hint))

    if not pipeline.stages:
        problem("the pipeline has no stages", fld="stages", hint="add at least one stage")
    ids: dict[str, Stage] = {}
    for i, st in enumerate(pipeline.stages):
        if st.id in ids:
            problem(f"duplicate stage id '{st.id}'", stage=st.id, fld=f"stages[{i}].id", hint="give every stage a unique id")
        ids[st.id] = st

    comps: dict[str, Component] = {}
    for st in pipeline.stages:
        comp = components.get(st.component_type)
        if comp is None:
            try:
                import difflib

                close = difflib.get_close_matches(st.component_type, list(components), n=1)
                hint = f"did you mean '{close[0]}'?" if close else "`fm plugins` lists the available components"
            except Exception:  # pragma: no cover
                hint = None
            problems.append(
                ComponentNotFoundError(
                    f"unknown component type '{st.component_type}'",
                    pipeline=name, stage=st.id, field="component_type", hint=hint,
                )
            )
            continue
        comps[st.id] = comp

    # ownership and gating by control-flow stages
    owner: dict[str, str] = {}
    gate: dict[str, str] = {}
    for st in pipeline.stages:
        comp = comps.get(st.id)
        if comp is None or not comp.governs:
            continue
        for key in comp.governs:
            for gid in comp.governed_stages({key: st.config.get(key)}):
                if gid not in ids:
                    problem(
                        f"'{key}' names unknown stage '{gid}'", stage=st.id, fld=f"config.{key}",
                        hint=f"use one of the stage ids: {', '.join(list(ids)[:8])}",
                    )
                    continue
                if gid == st.id:
                    problem(f"'{key}' names the stage itself", stage=st.id, fld=f"config.{key}")
                    continue
                table = owner if comp.owns else gate
                if gid in table and table[gid] != st.id:
                    problem(
                        f"stage '{gid}' is governed by both '{table[gid]}' and '{st.id}'",
                        stage=gid, hint="a stage can belong to one control-flow component only",
                    )
                table[gid] = st.id

    # dependencies
    deps: dict[str, list[str]] = {}
    for st in pipeline.stages:
        ds: list[str] = []
        for i, d in enumerate(st.depends_on):
            if d == st.id:
                problem("a stage cannot depend on itself", stage=st.id, fld=f"depends_on[{i}]", hint="remove it")
            elif d not in ids:
                problem(
                    f"depends on unknown stage '{d}'", stage=st.id, fld=f"depends_on[{i}]",
                    hint="fix the id or add that stage",
                )
            elif d not in ds:
                ds.append(d)
        if st.id in gate and gate[st.id] not in ds:
            ds.append(gate[st.id])
        deps[st.id] = ds

    cycle = _find_cycle(list(ids), deps)
    if cycle:
        problem(
            "dependency cycle: " + " -> ".join(cycle), stage=cycle[0], fld="depends_on",
            hint="remove one of these dependencies so the graph has no loop",
        )

    # a stage outside a loop/try body cannot depend on a stage inside it
    for st in pipeline.stages:
        for d in deps.get(st.id, ()):
            if d in owner and owner.get(st.id) != owner[d] and st.id != owner[d]:
                if owner.get(st.id) is None or not _owned_within(owner, st.id, owner[d]):
                    problem(
                        f"unreachable: depends on '{d}', which only runs inside '{owner[d]}'",
                        stage=st.id, fld="depends_on",
                        hint=f"depend on '{owner[d]}' instead and read its results",
                    )

    # template references: upstream.<id> must be a known stage that runs before this one
    if not cycle:
        for st in pipeline.stages:
            anc = _ancestors(st.id, deps)
            own = owner.get(st.id)
            if own:
                anc |= _ancestors(own, deps) | {x for x, o in owner.items() if o == own}
            for ref in references(st.settings()):
                if ref[0] != "upstream" or len(ref) < 2:
                    continue
                target = ref[1]
                if target not in ids:
                    problem(
                        f"references unknown stage 'upstream.{target}'", stage=st.id, fld="config",
                        hint="fix the stage id in the {{upstream...}} reference",
                    )
                elif target not in anc and target != st.id:
                    problem(
                        f"references 'upstream.{target}' but does not depend on it",
                        stage=st.id, fld="depends_on", hint=f"add '{target}' to depends_on",
                    )

    if pipeline.output_stage_id and pipeline.output_stage_id not in ids:
        problem(
            f"output_stage_id names unknown stage '{pipeline.output_stage_id}'", fld="output_stage_id",
            hint="set it to the id of the stage whose output is the pipeline's result",
        )

    # static config against the component's config schema
    plans: dict[str, StagePlan] = {}
    for st in pipeline.stages:
        comp = comps.get(st.id)
        if comp is None:
            continue
        if comp.config_schema:
            _check_config(st, comp, problem)
        try:
            render, lazy = _config_renderer(st, comp)
        except TemplateError as exc:
            problems.append(FlowMasonError(exc.message, pipeline=name, stage=st.id, field="config", hint=exc.hint))
            continue
        timeout = st.timeout_ms / 1000 if st.timeout_ms else None
        plans[st.id] = StagePlan(
            stage=st, component=comp, render=render, lazy=lazy, deps=deps.get(st.id, []),
            owner=owner.get(st.id), gate=gate.get(st.id), timeout_s=timeout,
            sync_ok=not comp.is_async and not (st.retry_config and st.retry_config.max_retries),
            redact=needs_redaction(st.settings()),
        )

    if problems:
        raise PipelineValidationError(problems, pipeline=name)

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


def _owned_within(owner: dict[str, str], sid: str, container: str) -> bool:
    cur = owner.get(sid)
    seen = 0
    while cur is not None and seen < 1000:
        if cur == container:
            return True
        cur = owner.get(cur)
        seen += 1
    return False


def _check_config(st: Stage, comp: Component, problem: Callable[..., None]) -> None:
    """Check the literal parts of a config against the component's JSON schema."""
    from .schemas import compile_schema

    settings = st.settings()
    schema = comp.config_schema or {}
    for key in schema.get("required", []):
        if key not in settings:
            problem(
                f"missing required config '{key}' for component '{comp.name}'", stage=st.id,
                fld=f"config.{key}", hint=f"add \"{key}\" to the stage's config",
            )
    props = schema.get("properties", {})
    for key, value in settings.items():
        sub = props.get(key)
        if sub is None or _has_template(value):
            continue
        err = compile_schema(sub).first_error(value)
        if err:
            problem(
                f"config '{key}' {err}", stage=st.id, fld=f"config.{key}",
                hint=f"see `fm schema --component {comp.name}`",
            )


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False
