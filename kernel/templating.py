"""`{{ ... }}` references and expressions in stage configs, compiled once per pipeline.

Existing pipeline files use Python-flavoured expressions inside the braces:
``{{input.topic}}``, ``{{upstream.fetch-data.body}}`` (stage ids with
hyphens), ``{{context.item.url}}`` inside a foreach, ``{{input.x or 'default'}}``,
``{{now()}}``, ``{{len([r for r in data if r.get('ok')])}}``. Jinja2 cannot
evaluate comprehensions, so expressions run in ``simpleeval``'s sandbox
(``EvalWithCompoundTypes``: no imports, no dunder access, bounded
comprehensions and string sizes), parsed once here and evaluated per call.
Plain dotted paths (the overwhelming majority) skip the evaluator and are
compiled to a direct lookup.

The earlier product's docs, schema, Studio and ``flowmason init`` also name
a stage's output ``{{stages.X.output.f}}``, ``{{X.output.f}}`` and
``{{upstream.X.output.f}}``; all three read ``{{upstream.X.f}}``
(``output`` is skipped unless stage X produced a field of that name, and
``X.output`` is read as a stage only when ``X`` is not a name in scope).
``references`` reports them as ``upstream.X``, so the plan checks them
like any other reference.

A value that is one whole template keeps its type (a list stays a list);
templates inside a longer string are rendered as text (dicts and lists as
JSON). ``{{env.NAME}}`` reads only allow-listed variables, so a server never
leaks its environment into a pipeline.

A field a stage's output does not have is an error naming the stage, the
field and the closest existing one (``{{upstream.a.vaule}}``), not a
silent null, at every level below ``upstream.<stage>``; an operand of
``or``/``and`` (other than the last) or an ``if`` test may be missing
(``{{upstream.a.x or 'default'}}``). A stage that has not produced an
output (skipped, not reached yet) still reads as null, as does a missing
``input.*`` (optional inputs). ``fm validate`` checks the same statically
where a component's output schema is closed (kernel/refcheck.py).
"""
from __future__ import annotations

import ast
import datetime as _dt
import json
import math
import os
import re
import uuid
from typing import Any, Callable, Mapping

from .errors import TemplateError

# `(?!\})`: in `{{input.x or {'a': 1}}}` the template ends at the last of the braces
_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}(?!\})", re.S)
_PATH = re.compile(r"^[A-Za-z_][\w\-]*(?:\.[\w\-]+|\[\d+\])*$")
_PATH_PART = re.compile(r"\.([\w\-]+)|\[(\d+)\]")
# `upstream.fetch-data.body` is not Python: quote hyphenated names after a dot
_HYPHEN_ATTR = re.compile(r"\bupstream\.([A-Za-z_][\w]*(?:-[\w]+)+)")

ROOTS = ("input", "upstream", "context", "env", "variables", "run", "pipeline", "item", "data", "stage")
# the names every stage's config renders with (the executor's run scope); components add names to their lazy keys
SCOPE_ROOTS = frozenset(("input", "upstream", "context", "env", "variables", "run", "pipeline"))

# the earlier product's forms of a stage's output (module docstring)
_STAGES_ROOT = re.compile(r"(?<![\w.\]'\"])stages\.(?=[A-Za-z_])")
_UPSTREAM_OUTPUT = re.compile(r"\bupstream(\.[A-Za-z_][\w\-]*|\[['\"][^'\"]+['\"]\])\.output\b")


def _earlier_forms(text: str) -> tuple[str, tuple[tuple[str, ...], ...]]:
    """(the text with `stages.` read as `upstream.`, other paths to try in order when a plain path is not there)."""
    if "stages." in text:
        text = _STAGES_ROOT.sub("upstream.", text)
    if ".output" not in text or not _PATH.match(text) or "[" in text:
        return text, ()
    parts = tuple(text.split("."))
    if parts[0] == "upstream" and len(parts) >= 3 and parts[2] == "output":
        return text, (parts[:2] + parts[3:],)
    if parts[0] not in ROOTS and len(parts) >= 2 and parts[1] == "output":
        return text, (("upstream",) + parts, ("upstream", parts[0]) + parts[2:])
    return text, ()


def static_form(text: str) -> str:
    """An expression's text with the earlier forms of stage outputs written as `upstream.X...` (for checks)."""
    text, alts = _earlier_forms(text)
    if alts:
        return ".".join(alts[-1])
    return _UPSTREAM_OUTPUT.sub(lambda m: "upstream" + m.group(1), text) if ".output" in text else text



def env_allowlist() -> frozenset[str]:
    """Names readable as ``{{env.NAME}}``: ``FM_ENV_ALLOWLIST`` (comma-separated) plus ``FM_VAR_*``."""
    from .settings import get_settings

    settings = get_settings()
    return frozenset(settings.env_allowlist) | frozenset(settings.template_vars)


class EnvView(Mapping[str, str]):
    """The environment as a pipeline may see it: allow-listed names only."""

    def __init__(self, allow: frozenset[str] | None = None) -> None:
        self._allow = env_allowlist() if allow is None else allow
        self.seen: set[str] = set()  # values handed out, so records can mask them

    def __getitem__(self, name: str) -> str:
        if name not in self._allow:
            raise TemplateError(
                f"environment variable '{name}' is not allow-listed",
                field=f"env.{name}",
                hint=f"add {name} to FM_ENV_ALLOWLIST (comma-separated) or name it FM_VAR_{name}",
            )
        value = os.environ.get(name)
        if value is None:
            raise TemplateError(f"environment variable '{name}' is not set", field=f"env.{name}")
        self.seen.add(value)
        return value

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __iter__(self):
        return iter(sorted(self._allow))

    def __len__(self) -> int:
        return len(self._allow)


def _now(fmt: str | None = None) -> str:
    t = _dt.datetime.now(_dt.timezone.utc)
    return t.strftime(fmt) if fmt else t.isoformat()


def _to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, default=str, ensure_ascii=False)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len, "str": str, "int": int, "float": float, "bool": bool, "list": list,
    "dict": dict, "set": set, "tuple": tuple, "sorted": sorted, "reversed": lambda x: list(reversed(x)),
    "min": min, "max": max, "sum": sum, "abs": abs, "round": round, "any": any, "all": all,
    "enumerate": lambda x: list(enumerate(x)), "zip": lambda *a: list(zip(*a)),
    "range": lambda *a: range(*a) if len(range(*a)) <= 100_000 else _too_big(),
    "isinstance": None,  # replaced below with a safe variant
    "now": _now, "today": lambda: _dt.date.today().isoformat(),
    "uuid": lambda: uuid.uuid4().hex, "json": _to_json, "to_json": _to_json,
    "from_json": json.loads, "lower": lambda s: str(s).lower(), "upper": lambda s: str(s).upper(),
    "join": lambda items, sep=", ": sep.join(str(i) for i in items), "floor": math.floor, "ceil": math.ceil,
}


def _too_big() -> None:
    raise TemplateError("range() larger than 100,000 items", hint="narrow the range")


_SAFE_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}


def _isinstance(value: Any, type_name: Any) -> bool:
    if isinstance(type_name, str):
        return isinstance(value, _SAFE_TYPES.get(type_name, ()))  # type: ignore[arg-type]
    return isinstance(value, type_name) if type_name in _SAFE_TYPES.values() else False


FUNCTIONS["isinstance"] = _isinstance

_evaluator = None


def _get_evaluator():
    global _evaluator
    if _evaluator is None:
        from simpleeval import DISALLOW_METHODS, DISALLOW_PREFIXES, EvalWithCompoundTypes, FeatureNotAvailable

        class _Lenient(EvalWithCompoundTypes):
            """Attribute access on dicts reads keys; a missing key or a None base gives None,
            as references to a skipped branch did in the earlier product."""

            def _eval_attribute(self, node):  # type: ignore[override]
                attr = node.attr
                if attr.startswith(tuple(DISALLOW_PREFIXES)) or attr in DISALLOW_METHODS:
                    raise FeatureNotAvailable(f"access to '{attr}' is not allowed")
                base = self._eval(node.value)
                if base is None:
                    return None
                if attr == "output" and _is_stage_output(node.value) and not (isinstance(base, Mapping) and attr in base):
                    return base  # `upstream.X.output`, the earlier product's name for the output itself
                if isinstance(base, Mapping):
                    if attr in base:
                        return base[attr]
                    if hasattr(dict, attr):
                        return getattr(base, attr)  # .get, .keys, .items ...
                    ref = getattr(node, "fm_ref", None)
                    if ref is not None:  # a field below a stage's output, not under `or`: see kernel/refs.py
                        raise missing_field_error(ref, base)
                    return None
                try:
                    return getattr(base, attr)
                except AttributeError:
                    return None

            def _eval_subscript(self, node):  # type: ignore[override]
                container = self._eval(node.value)
                key = self._eval(node.slice)
                if isinstance(container, Mapping) and isinstance(key, (str, int)) and key not in container:
                    ref = getattr(node, "fm_ref", None)
                    if ref is not None:
                        raise missing_field_error(ref, container)
                    if getattr(node, "fm_lenient", False):
                        return None
                elif container is None and getattr(node, "fm_lenient", False):
                    return None
                return container[key]

        _evaluator = _Lenient(functions=FUNCTIONS)
    return _evaluator


def _is_stage_output(node: Any) -> bool:
    """Is this expression node `upstream.X` or `upstream['X']`?"""
    inner = node.value if isinstance(node, (ast.Attribute, ast.Subscript)) else None
    return isinstance(inner, ast.Name) and inner.id == "upstream"


def _lookup(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return value[key]
    if isinstance(value, (list, tuple)) and key.lstrip("-").isdigit():
        return value[int(key)]
    try:
        return getattr(value, key)
    except AttributeError:
        raise KeyError(key) from None


_NONE: frozenset[str] = frozenset()


class Expr:
    """One compiled expression (the text between the braces)."""

    __slots__ = ("text", "_path", "_ast", "_reads", "_alts", "_paths")

    def __init__(self, text: str) -> None:
        self.text = text
        self._path: tuple[str, ...] | None = None
        self._ast = None
        self._reads = None
        text, self._alts = _earlier_forms(text)
        path = None
        if _PATH.match(text) and text not in ("True", "False", "None"):  # constants are expressions
            if "[" not in text:
                path = tuple(text.split("."))  # the usual `upstream.fetch.body`: no regex needed
            else:
                head = text.split(".", 1)[0].split("[", 1)[0]
                path = (head,) + tuple(a or b for a, b in _PATH_PART.findall(text[len(head):]))
            if text.startswith("_") or "._" in text:
                path = None  # private names go through the sandbox, which refuses them
        if path is not None:
            self._path = path
            # the earlier product's forms (`_alts`) are tried only when the plain path is not there
            self._paths = (path, *self._alts)
        else:
            source = _HYPHEN_ATTR.sub(lambda m: f"upstream[{m.group(1)!r}]", text)
            try:
                self._ast = _get_evaluator().parse(source)
            except SyntaxError as exc:
                raise TemplateError(
                    f"invalid expression '{{{{{self.text}}}}}': {exc.msg}",
                    hint="expressions use Python syntax, e.g. {{input.x or 'default'}}",
                ) from None
            from .refs import analyze

            r = analyze(self._ast)  # also marks the fields that must exist (fm_ref)
            self._reads = (frozenset(r.names), frozenset(r.functions), tuple(r.paths))

    @property
    def root(self) -> str | None:
        return self._path[0] if self._path else None

    def reads(self) -> tuple[frozenset[str], frozenset[str], tuple[tuple[tuple[str, ...], bool], ...]]:
        """(names, called functions, (path, lenient) pairs) this expression reads; see kernel/refs.py."""
        r = self._reads
        if r is None:  # a plain path (made on first use), or a private name the sandbox refuses at run time
            # the earlier product's forms are checked as what they read (`upstream.X.f`)
            path = self._alts[-1] if self._alts else self._path
            r = self._reads = (frozenset((path[0],)), _NONE, ((path, False),)) if path else (_NONE, _NONE, ())
        return r

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        if self._path is not None:
            for path in self._paths:
                try:
                    value = scope[path[0]]
                    for key in path[1:]:
                        value = _lookup(value, key)
                    return value
                except (KeyError, IndexError, TypeError):
                    continue
            return self._missing(scope)
        ev = _get_evaluator()
        ev.names = scope
        try:
            return ev.eval(self.text, previously_parsed=self._ast)
        except TemplateError:
            raise
        except Exception as exc:  # noqa: BLE001 - the sandbox raises many kinds; report them all the same way
            raise TemplateError(
                f"cannot evaluate '{{{{{self.text}}}}}': {type(exc).__name__}: {exc}",
                hint="check the names it uses exist at this point of the pipeline",
            ) from None

    def _missing(self, scope: Mapping[str, Any]) -> Any:
        # A reference to something not (yet) there renders as None, as the
        # earlier product did; validation reports unknown stage references.
        path = self._alts[-1] if self._alts else self._path or ()
        if path and path[0] not in scope:
            raise TemplateError(
                f"unknown name '{path[0]}' in '{{{{{self.text}}}}}'",
                hint=f"references start with one of: {', '.join(ROOTS)}",
            )
        if path and path[0] == "env":
            scope["env"][path[1]]  # raises the allow-list error
        if len(path) > 2 and path[0] == "upstream":
            value = scope["upstream"].get(path[1]) if isinstance(scope["upstream"], Mapping) else None
            for i in range(2, len(path)):  # where it broke: a missing key in a dict is the author's typo
                if not isinstance(value, Mapping):
                    break
                if path[i] not in value:
                    raise missing_field_error(path[: i + 1], value)
                value = value[path[i]]
        return None


def missing_field_error(ref: tuple[str, ...], have: Mapping[str, Any]) -> TemplateError:
    """``upstream.<stage>.<...>.<field>`` where the dict at that point has no such key."""
    from .outputs import close_match

    stage, name = ref[1], ref[-1]
    where = "output" if len(ref) == 3 else "output's '" + ".".join(ref[2:-1]) + "'"
    keys = [str(k) for k in have]
    guess = close_match(name, keys)
    shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "") if keys else "no fields"
    hint = (f"did you mean '{guess}'? " if guess else "") + f"it has: {shown}; " \
        f"write {{{{{'.'.join(ref)} or 'default'}}}} if it may be absent"
    return TemplateError(f"stage '{stage}' {where} has no field '{name}' ({'.'.join(ref)})",
                         field="config", hint=hint)


def _stringify(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


Renderer = Callable[[Mapping[str, Any]], Any]


def _const(value: Any) -> Renderer:
    return lambda scope: value


def compile_value(value: Any, sink: list[Expr] | None = None) -> tuple[Renderer, bool]:
    """Compile a config value; returns (renderer, is_dynamic). Static values render to themselves.

    ``sink``, when given, collects every compiled expression (for the plan's static checks).
    """
    if isinstance(value, str):
        if "{{" not in value:
            return _const(value), False
        parts = _TEMPLATE.split(value)
        if len(parts) == 3 and parts[0] == "" and parts[2] == "":
            expr = Expr(parts[1])
            if sink is not None:
                sink.append(expr)
            return expr.evaluate, True
        compiled: list[Any] = []
        for i, part in enumerate(parts):
            if i % 2:
                compiled.append(Expr(part))
                if sink is not None:
                    sink.append(compiled[-1])
            elif part:
                compiled.append(part)

        def render(scope: Mapping[str, Any]) -> str:
            return "".join(p if isinstance(p, str) else _stringify(p.evaluate(scope)) for p in compiled)

        return render, True
    if isinstance(value, dict):
        items = [(k, *compile_value(v, sink)) for k, v in value.items()]
        if not any(dyn for _, _, dyn in items):
            return _const(value), False
        pairs = [(k, r) for k, r, _ in items]
        return (lambda scope: {k: r(scope) for k, r in pairs}), True
    if isinstance(value, list):
        items2 = [compile_value(v, sink) for v in value]
        if not any(dyn for _, dyn in items2):
            return _const(value), False
        rs = [r for r, _ in items2]
        return (lambda scope: [r(scope) for r in rs]), True
    return _const(value), False


def render(value: Any, scope: Mapping[str, Any]) -> Any:
    """Compile and render in one go (for values seen once, e.g. a component's own lazy field)."""
    return compile_value(value)[0](scope)


def evaluate(expression: str, scope: Mapping[str, Any]) -> Any:
    """Evaluate a bare expression (a filter's `condition`), with or without braces."""
    text = expression.strip()
    m = _TEMPLATE.fullmatch(text)
    if m:
        text = m.group(1)
    return Expr(text).evaluate(scope)


_UPSTREAM_REF = re.compile(r"\bupstream\.([A-Za-z_][\w\-]*)|\bupstream\[['\"]([^'\"]+)['\"]\]")
_ROOT_REF = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\.")


def references(value: Any) -> list[tuple[str, ...]]:
    """Every dotted reference path found in a config value (for validation)."""
    found: list[tuple[str, ...]] = []
    _collect_references(value, found)
    return found


def _collect_references(v: Any, found: list[tuple[str, ...]]) -> None:
    if isinstance(v, str):
        if "{{" in v:
            for text in _TEMPLATE.findall(v):
                text = static_form(text)
                for m in _UPSTREAM_REF.finditer(text):
                    found.append(("upstream", m.group(1) or m.group(2)))
                for m in _ROOT_REF.finditer(text):
                    found.append((m.group(1),))
    elif isinstance(v, dict):
        for x in v.values():
            _collect_references(x, found)
    elif isinstance(v, list):
        for x in v:
            _collect_references(x, found)
