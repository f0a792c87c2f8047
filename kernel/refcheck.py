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

    def __init__(self, stages: dict[str, Stage], comps: dict[str, Component], settings: dict[str, dict[str, Any]]):
        self._stages = stages
        self._comps = comps
        self._settings = settings
        self._cache: dict[str, Any] = {}

    def component(self, sid: str) -> Component | None:
        return self._comps.get(sid)

    def get(self, sid: str) -> Any:
        if sid in self._cache:
            return self._cache[sid]
        comp = self._comps.get(sid)
        st = self._stages.get(sid)
        schema = None
        if comp is not None and st is not None and st.fallback_output is None:
            try:
                schema = comp.output_schema_for(self._settings.get(sid, {}))
            except Exception:  # noqa: BLE001 - a component's own guess must never break a compile
                schema = None
        self._cache[sid] = schema
        return schema


def check_stage(
    stage: Stage, comp: Component, settings: dict[str, Any], eager: Iterable[Expr], lazy: Iterable[Expr],
    outputs: OutputSchemas, problem: Callable[..., None],
) -> None:
    """Report unknown roots/functions and unknown output fields in one stage's templates."""
    lazy_roots: frozenset[str] | None = None
    for exprs, is_lazy in ((eager, False), (lazy, True)):
        for expr in exprs:
            names, functions, paths = expr.reads()
            if is_lazy:
                if lazy_roots is None:
                    lazy_roots = frozenset(_LAZY_ROOTS | set(comp.names_for(settings)))
                allowed = lazy_roots
                if "*" in allowed:  # the component's extra names are known only at run time
                    names = frozenset()
            else:
                allowed = SCOPE_ROOTS
            for name in names:
                if name not in allowed and name not in FUNCTIONS:
                    guess = close_match(name, allowed)
                    problem(
                        f"unknown name '{name}' in '{{{{{expr.text}}}}}'"
                        + (f" (did you mean '{guess}'?)" if guess else ""),
                        stage=stage.id, fld=_key_of(settings, expr),
                        hint=f"references start with one of: {', '.join(sorted(allowed))}",
                    )
            for name in functions:
                if name not in FUNCTIONS and name not in names:
                    guess = close_match(name, FUNCTIONS)
                    problem(
                        f"unknown function '{name}' in '{{{{{expr.text}}}}}'", stage=stage.id,
                        fld=_key_of(settings, expr),
                        hint=f"did you mean '{guess}'?" if guess else f"functions: {', '.join(sorted(FUNCTIONS))}",
                    )
            for path, lenient in paths:
                if lenient or len(path) < 3 or path[0] != "upstream":
                    continue
                schema = outputs.get(path[1])
                if schema is None:
                    continue
                miss = missing_field(schema, path[2:])
                if miss is None:
                    continue
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
