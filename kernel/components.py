"""The component API for plugin authors: decorators and the stage context.

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
names in scope (``ctx.render(value, data=...)``).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from .executor import StageContext  # noqa: F401

ComponentFn = Callable[["StageContext"], Any]


@dataclass
class Component:
    name: str
    kind: str  # "node" | "operator" | "control_flow"
    fn: ComponentFn
    description: str = ""
    config_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    governs: tuple[str, ...] = ()
    owns: bool = False
    lazy: tuple[str, ...] = ()
    category: str = ""
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.fn)

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


def _decorator(kind: str) -> Callable[..., Callable[[ComponentFn], Component]]:
    def make(
        name: str,
        *,
        description: str = "",
        config_schema: dict[str, Any] | None = None,
        output_schema: dict[str, Any] | None = None,
        governs: tuple[str, ...] | list[str] = (),
        owns: bool = False,
        lazy: tuple[str, ...] | list[str] = (),
        category: str = "",
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
            )

        return wrap

    return make


component = _decorator("operator")
operator = _decorator("operator")
node = _decorator("node")
control_flow = _decorator("control_flow")
