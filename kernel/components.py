"""The component API for plugin authors: the decorators, ``Component`` and the ``StageContext`` a component sees.

A component is an async (or plain) function of one argument, the
``StageContext``; it returns the stage's output. Decorators attach the
metadata the engine and editors need::

    from flowmason import operator, hookimpl

    @operator("word-count", description="Count words", config_schema={...})
    async def word_count(ctx):
        return {"count": len(ctx.config["text"].split())}

    @hookimpl
    def fm_register_components(register):
        register(word_count)

``@node`` marks AI nodes (they call a model), ``@operator`` deterministic
operators, ``@control_flow`` components that govern other stages: they name
the config keys listing those stages (``governs``) and whether the stages
are run by the component itself (``owns=True``: foreach, trycatch) or gated
in the main graph (router, conditional). ``lazy`` config keys are not
rendered before the call; the component renders them itself with extra
names in scope (``ctx.render(value, data=...)``), which it lists in
``lazy_names`` so that ``fm validate`` knows them.

``output_schema`` describes what the component returns (a JSON Schema, or
a pydantic model class, with a description per field): an object schema
with ``additionalProperties: false`` is *closed*, and a reference to a field
it does not list (``{{upstream.a.vaule}}``) is refused before the run;
anything else is open-ended (a passthrough, whatever a template renders).
When the shape depends on the stage's config (a generator given an
``output_schema``, a json-transform's template), ``output_for(settings)``
answers per stage from the literal config. ``pipeline_refs`` names the
config keys that reference another pipeline (a sub-pipeline), which
``fm validate`` resolves through the runner's loaders.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from collections import ChainMap
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Callable

from .errors import TemplateError

if TYPE_CHECKING:  # pragma: no cover
    from .executor import Execution
    from .model import Pipeline, Run
    from .plan import StagePlan

ComponentFn = Callable[["StageContext"], Any]


class _Return(Exception):
    """Raised inside the graph when a `return` stage ends the run early."""

    def __init__(self, value: Any) -> None:
        self.value = value


class Suspend(Exception):
    """Raised by ``StageContext.suspend``: the run stops here unfinished, to be continued by its host."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StageContext:
    """What a component sees: its rendered config and the handles to steer the run."""

    __slots__ = ("execution", "stage", "config", "scope", "graph", "attempt", "_plan", "usage")

    def __init__(self, execution: "Execution", sp: StagePlan, config: dict[str, Any], scope: Mapping[str, Any], graph: Any) -> None:
        self.execution = execution
        self.stage = sp.stage
        self.config = config
        self.scope = scope
        self.graph = graph
        self.attempt = 1
        self._plan = sp
        self.usage: dict[str, Any] | None = None

    # -- reading --
    @property
    def run(self) -> Run:
        return self.execution.run

    @property
    def inputs(self) -> dict[str, Any]:
        return self.execution.run.inputs

    @property
    def upstream(self) -> Mapping[str, Any]:
        return self.scope["upstream"]

    @property
    def variables(self) -> dict[str, Any]:
        return self.execution.variables

    @property
    def pipeline(self) -> Pipeline:
        return self.execution.plan.pipeline

    def lazy(self, key: str, default: Any = None) -> Any:
        """The raw (unrendered) value of a lazy config key."""
        return self._plan.lazy.get(key, default)

    def _in_scope(self, fn: Callable[[Any, Mapping[str, Any]], Any], value: Any, extra: dict[str, Any]) -> Any:
        scope = ChainMap(extra, self.scope) if extra else self.scope
        try:
            return fn(value, scope)
        except TemplateError as exc:
            exc.stage = self.stage.id
            exc.pipeline = self.execution.plan.name
            raise

    def render(self, value: Any, **extra: Any) -> Any:
        """Render templates in ``value`` with extra names in scope (``data=...``)."""
        from .templating import render

        return self._in_scope(render, value, extra)

    def evaluate(self, expression: str, **extra: Any) -> Any:
        """Evaluate a bare expression such as a filter condition."""
        from .templating import evaluate

        return self._in_scope(evaluate, expression, extra)

    def log(self, level: str, message: str, **data: Any) -> None:
        self.execution.emit("stage.log", self.stage, {"level": level, "message": message, "data": data})

    def record_usage(self, **usage: Any) -> None:
        """Model usage for this stage (tokens, cost); summed into the run."""
        current = self.usage or {}
        for k, v in usage.items():
            current[k] = current.get(k, 0) + v if isinstance(v, (int, float)) else v
        self.usage = current

    def emit(self, kind: str, data: Any) -> None:
        """Stream something to listeners (tokens as they arrive, progress)."""
        self.execution.emit(kind, self.stage, data)

    def provider(self, name: str | None = None, **settings: Any) -> Any:
        return self.execution.provider(name or self.stage.provider, **settings)

    # -- steering (control flow) --
    async def run_stages(self, ids: Iterable[str], *, context: dict[str, Any] | None = None, label: str | None = None) -> dict[str, Any]:
        """Run owned stages as a sub-graph; returns their outputs by stage id.

        ``context`` adds names under ``{{context.*}}``; ``label`` tags the
        recorded results (``stage[3]``). A failing stage raises StageError.
        """
        return await self.execution.run_stages(self, ids, context=context, label=label)

    def skip(self, ids: Iterable[str]) -> None:
        """Mark gated stages as not taken: they and whatever depends only on them are skipped."""
        self.graph.skip_requested.update(ids)

    def finish(self, value: Any) -> None:
        """End the whole run now with ``value`` as its output (the `return` component)."""
        raise _Return(value)

    def suspend(self, reason: str) -> None:
        """Park the whole run here, unfinished: a durable host continues it later (fan-out, deadline).

        The stage is not recorded; the run is not recorded as finished;
        ``Execution.execute`` returns the run with ``suspended`` set.
        """
        self.execution.suspended = reason  # before the other stages are cancelled: they are parked, not cancelled
        raise Suspend(reason)

    async def run_pipeline(self, ref: Any, inputs: dict[str, Any]) -> Any:
        """Run another pipeline (by id, path or inline dict) and return its output."""
        return await self.execution.run_child(ref, inputs, self.stage)


@dataclass
class Component:
    name: str
    kind: str  # "node" | "operator" | "control_flow"
    fn: ComponentFn
    description: str = ""
    config_schema: dict[str, Any] | None = None
    output_schema: Any = None  # dict (JSON Schema) | pydantic model class (converted on creation)
    governs: tuple[str, ...] = ()
    owns: bool = False
    lazy: tuple[str, ...] = ()
    category: str = ""
    output_for: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
    lazy_names: tuple[str, ...] | Callable[[dict[str, Any]], Iterable[str]] = ()
    pipeline_refs: tuple[str, ...] = ()
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.fn)
        if isinstance(self.output_schema, type) and hasattr(self.output_schema, "model_json_schema"):
            self.output_schema = _model_schema(self.output_schema)

    def output_schema_for(self, settings: dict[str, Any]) -> dict[str, Any] | None:
        """The output schema of a stage with these (literal) settings: ``output_for``'s answer, else the declared one."""
        if self.output_for is not None:
            return self.output_for(settings)
        return self.output_schema

    def names_for(self, settings: dict[str, Any]) -> Iterable[str]:
        """Names besides the run's scope that this component's lazy keys render with."""
        names = self.lazy_names
        return names(settings) if callable(names) else names

    async def call(self, ctx: "StageContext") -> Any:
        if self.is_async:
            return await self.fn(ctx)
        result = self.fn(ctx)
        if inspect.isawaitable(result):
            return await result  # type: ignore[no-any-return]
        return result

    def governed_stages(self, config: dict[str, Any]) -> list[str]:
        """Stage ids this control-flow component names in its config."""
        out: list[str] = []
        for key in self.governs:
            value = config.get(key)
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, list):
                out.extend(v for v in value if isinstance(v, str))
            elif isinstance(value, dict):  # router routes: {"case": [ids]}
                for v in value.values():
                    if isinstance(v, str):
                        out.append(v)
                    elif isinstance(v, list):
                        out.extend(x for x in v if isinstance(x, str))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "category": self.category,
            "config_schema": self.config_schema,
            "output_schema": self.output_schema,
            "governs": list(self.governs),
        }


def _model_schema(model: Any) -> dict[str, Any]:
    """A pydantic model's JSON Schema, closed (it lists every field the component returns), ``$ref``s inlined."""
    schema = model.model_json_schema(mode="serialization")
    defs = schema.pop("$defs", {})

    def inline(node: Any, depth: int = 0) -> Any:
        if depth > 32:  # a recursive model: leave the rest open
            return {}
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs.get(ref.rsplit("/", 1)[1], {}), depth + 1)
            return {k: inline(v, depth + 1) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v, depth + 1) for v in node]
        return node

    out = inline(schema)
    if model.model_config.get("extra") != "allow":
        out.setdefault("additionalProperties", False)
    return out


def _decorator(kind: str) -> Callable[..., Callable[[ComponentFn], Component]]:
    def make(
        name: str,
        *,
        description: str = "",
        config_schema: dict[str, Any] | None = None,
        output_schema: Any = None,
        governs: tuple[str, ...] | list[str] = (),
        owns: bool = False,
        lazy: tuple[str, ...] | list[str] = (),
        category: str = "",
        output_for: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
        lazy_names: tuple[str, ...] | Callable[[dict[str, Any]], Iterable[str]] = (),
        pipeline_refs: tuple[str, ...] = (),
    ) -> Callable[[ComponentFn], Component]:
        def wrap(fn: ComponentFn) -> Component:
            return Component(
                name=name,
                kind=kind,
                fn=fn,
                description=description or (inspect.getdoc(fn) or "").split("\n")[0],
                config_schema=config_schema,
                output_schema=output_schema,
                governs=tuple(governs),
                owns=owns,
                lazy=tuple(lazy),
                category=category or kind,
                output_for=output_for,
                lazy_names=lazy_names if callable(lazy_names) else tuple(lazy_names),
                pipeline_refs=tuple(pipeline_refs),
            )

        return wrap

    return make


component = _decorator("operator")
operator = _decorator("operator")
node = _decorator("node")
control_flow = _decorator("control_flow")
