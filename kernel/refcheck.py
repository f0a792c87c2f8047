"""Static checks of the templates in stage configs: the names they start from and the output fields they read.

Run by the plan compiler (so by ``fm validate``, ``fm run`` and the HTTP
API alike) on the expressions it has just compiled; nothing is parsed
twice. Two problems are reported, each naming the stage, the config key
and the fix:

- an unknown root or function: ``{{inptu.x}}`` -> "unknown name 'inptu'
  (did you mean 'input'?)". A stage's config renders with the run's names
  (``templating.SCOPE_ROOTS``); a component's lazy keys also see the names
  it declares (``Component.names_for``: ``data`` in a json-transform
  template, a text-template's ``values``...; ``"*"`` when they are known
  only at run time);
- a field a stage does not produce: ``{{upstream.a.vaule}}`` where ``a``'s
  output schema is closed (kernel/outputs.py) -> "stage 'a' (generator)
  has no output field 'vaule' (did you mean 'value'?)". Paths under
  ``or``/``and``/``if`` tests are not checked: they may be absent on purpose.
  A stage with a ``fallback_output`` may produce that instead, so its
  output is taken as open.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from .components import Component
from .model import Stage
from .outputs import close_match, missing_field
from .templating import FUNCTIONS, SCOPE_ROOTS, Expr

# names component code commonly adds to its lazy keys (json-transform's data, filter's item)
_LAZY_ROOTS = SCOPE_ROOTS | {"item", "data"}


class OutputSchemas:
    """Each stage's output schema from its component and literal config, computed once per compile."""

    def __init__(self, stages: dict[str, Stage], comps: dict[str, Component]):
        self._stages = stages
        self._comps = comps
        self._cache: dict[str, Any] = {}

    def component(self, sid: str) -> Component | None:
        return self._comps.get(sid)

    def get(self, sid: str) -> Any:
        cached = self._cache.get(sid, _UNSET)
        if cached is not _UNSET:
            return cached
        comp = self._comps.get(sid)
        schema = None
        if comp is not None and (comp.output_schema is not None or comp.output_for is not None):
            st = self._stages.get(sid)
            if st is not None and st.fallback_output is None:
                try:
                    schema = comp.output_schema_for(st.settings())
                except Exception:  # noqa: BLE001 - a component's own guess must never break a compile
                    schema = None
        self._cache[sid] = schema
        return schema


_UNSET = object()


def check_stage(
    stage: Stage, comp: Component, settings: dict[str, Any], eager: Iterable[Expr], lazy: Iterable[Expr],
    outputs: OutputSchemas, problem: Callable[..., None],
) -> None:
    """Report unknown roots/functions and unknown output fields in one stage's templates."""
    for expr in eager:
        _check(expr, SCOPE_ROOTS, stage, settings, outputs, problem)
    if lazy:
        names = set(comp.names_for(settings))
        allowed = None if "*" in names else frozenset(_LAZY_ROOTS | names)  # "*": known only at run time
        for expr in lazy:
            _check(expr, allowed, stage, settings, outputs, problem)


def _check(expr: Expr, allowed: frozenset[str] | None, stage: Stage, settings: dict[str, Any],
           outputs: OutputSchemas, problem: Callable[..., None]) -> None:
    names, functions, paths = expr.reads()
    if allowed is not None and not names <= allowed:  # the common case is one subset test
        for name in names - allowed:
            if name not in FUNCTIONS:
                guess = close_match(name, allowed)
                problem(
                    f"unknown name '{name}' in '{{{{{expr.text}}}}}'" + (f" (did you mean '{guess}'?)" if guess else ""),
                    stage=stage.id, fld=_key_of(settings, expr),
                    hint=f"references start with one of: {', '.join(sorted(allowed))}",
                )
    for name in functions:
        if name not in FUNCTIONS and name not in names:
            guess = close_match(name, FUNCTIONS)
            problem(
                f"unknown function '{name}' in '{{{{{expr.text}}}}}'", stage=stage.id, fld=_key_of(settings, expr),
                hint=f"did you mean '{guess}'?" if guess else f"functions: {', '.join(sorted(FUNCTIONS))}",
            )
    for path, lenient in paths:
        if lenient or len(path) < 3 or path[0] != "upstream":
            continue
        schema = outputs.get(path[1])
        if schema is not None:
            miss = missing_field(schema, path[2:])
            if miss is not None:
                _unknown_field(expr, path, miss, stage, settings, outputs, problem)


def _unknown_field(expr: Expr, path: tuple[str, ...], miss: tuple[int, list[str]], stage: Stage,
                   settings: dict[str, Any], outputs: OutputSchemas, problem: Callable[..., None]) -> None:
    index, known = miss
    bad = path[2 + index]
    where = "output field" if index == 0 else "field under '" + ".".join(path[2:2 + index]) + "' of its output"
    guess = close_match(bad, known)
    target = outputs.component(path[1])
    kind = f" ({target.name})" if target is not None else ""
    problem(
        f"references '{'.'.join(path[:3 + index])}', but stage '{path[1]}'{kind} has no {where} '{bad}'"
        + (f" (did you mean '{guess}'?)" if guess else ""),
        stage=stage.id, fld=_key_of(settings, expr),
        hint=f"its fields: {', '.join(known) or 'none'} (`fm schema --component {kind.strip(' ()')}`)",
    )


def _key_of(settings: dict[str, Any], expr: Expr) -> str:
    """The config key holding this expression (searched only when there is a problem to report)."""
    for key, value in settings.items():
        if _contains(value, expr.text):
            return f"config.{key}"
    return "config"


def _contains(value: Any, text: str) -> bool:
    if isinstance(value, str):
        return text in value
    if isinstance(value, dict):
        return any(_contains(v, text) for v in value.values())
    if isinstance(value, list):
        return any(_contains(v, text) for v in value)
    return False
