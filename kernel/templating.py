"""`{{ ... }}` references and expressions in stage configs, compiled once per pipeline.

Existing pipeline files use Python-flavoured expressions inside the braces:
``{{input.topic}}``, ``{{upstream.fetch-data.body}}`` (stage ids with
hyphens), ``{{context.item.url}}`` inside a foreach, ``{{input.x or 'default'}}``,
``{{now()}}``, ``{{len([r for r in data if r.get('ok')])}}``. Jinja2 cannot
evaluate comprehensions, so expressions run in ``simpleeval``'s sandbox
(``EvalWithCompoundTypes``: no imports, no dunder access), parsed once here
and evaluated per call, within the bounds of ``kernel/bounds.py`` (work,
size, memory, result and time; a slow stage config is finished off the
event loop). Plain dotted paths (the overwhelming majority) skip the
evaluator and are compiled to a direct lookup.

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
import functools
import json
import math
import os
import re
import threading
import time
import uuid
from typing import Any, Callable, Mapping

from .bounds import MAX_SIZE, ExpressionLimit, Offload, check_result, make_evaluator, weight
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

    def __init__(self, allow: frozenset[str] | None = None, values: Mapping[str, str] | None = None) -> None:
        self._allow = env_allowlist() if allow is None else allow
        self._values = os.environ if values is None else values
        self.seen: set[str] = set()  # values handed out, so records can mask them

    def __reduce__(self) -> Any:
        # to the expression process: the allowed values as they are here, not that process's environment
        return EnvView, (self._allow, {n: self._values[n] for n in self._allow if n in self._values})

    def __getitem__(self, name: str) -> str:
        if name not in self._allow:
            raise TemplateError(
                f"environment variable '{name}' is not allow-listed",
                field=f"env.{name}",
                hint=f"add {name} to FM_ENV_ALLOWLIST (comma-separated) or name it FM_VAR_{name}",
            )
        value = self._values.get(name)
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
    if indent is not None and not 0 <= int(indent) <= 16:
        raise TemplateError(f"json(..., indent={indent}) is not between 0 and 16", hint="use an indent of 0 to 16")
    return json.dumps(value, indent=indent, default=str, ensure_ascii=False)


def _join(items: Any, sep: str = ", ") -> str:
    parts = [str(i) if not isinstance(i, (list, tuple, dict, set)) or weight(i, MAX_SIZE) <= MAX_SIZE else _too_long()
             for i in items]
    if sum(map(len, parts)) + len(str(sep)) * max(len(parts) - 1, 0) > MAX_SIZE:
        _too_long()
    return str(sep).join(parts)


def _too_long() -> Any:
    raise ExpressionLimit("size", f"join() would build a text of more than {MAX_SIZE:,} characters")


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
    "join": _join, "floor": math.floor, "ceil": math.ceil,
}


def _too_big() -> None:
    raise TemplateError("range() larger than 100,000 items", hint="narrow the range")


_SAFE_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}


def _isinstance(value: Any, type_name: Any) -> bool:
    if isinstance(type_name, str):
        return isinstance(value, _SAFE_TYPES.get(type_name, ()))  # type: ignore[arg-type]
    return isinstance(value, type_name) if type_name in _SAFE_TYPES.values() else False


FUNCTIONS["isinstance"] = _isinstance

class _Local(threading.local):
    """Per thread: the evaluator (it holds the names and counters) and the fast-path flag."""

    evaluator: Any = None
    offload = False


_local = _Local()
_seconds: list[float] = [1.0, -1.0]  # FM_EXPR_MAX_SECONDS and when it was read (settings cost ~20 µs: once a second)
_pools: dict[str, Any] = {}


def _get_evaluator():
    ev = _local.evaluator
    if ev is None:
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

        ev = _local.evaluator = make_evaluator(FUNCTIONS, _Lenient)
    return ev


def _max_seconds() -> float:
    now = time.monotonic()
    if now - _seconds[1] > 1.0:
        from .settings import get_settings

        _seconds[0], _seconds[1] = get_settings().expr_max_seconds, now
    return _seconds[0]


def render_fast(render: Callable[[Mapping[str, Any]], Any], scope: Mapping[str, Any]) -> Any:
    """``render(scope)`` on the fast path: raises ``Offload`` when an expression needs more than a moment,
    and the caller finishes it with ``render_off_loop`` (the executor does, for stage configs)."""
    _local.offload = True
    try:
        return render(scope)
    finally:
        _local.offload = False


async def render_off_loop(render: Callable[[Mapping[str, Any]], Any], scope: Mapping[str, Any]) -> Any:
    """Finish a render that left the fast path, with the full bounds, without holding the event loop.

    On a server (``prepare_off_loop`` started it) in the expression process,
    a separate interpreter: a thread shares the GIL, and on a busy machine
    the loop then waits whenever the thread is descheduled holding it.
    Elsewhere (``fm run``, AWS Lambda, which has no /dev/shm for a process
    pool) or when the scope does not pickle, on the expression thread. One
    worker each, so hostile pipelines queue instead of taking the CPU.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    source = getattr(render, "source", None)
    pool = _pools.get("process") if source is not None else None  # started by a server (prepare_off_loop)
    if pool is not None:
        import pickle
        from concurrent.futures.process import BrokenProcessPool

        try:
            outcome = await loop.run_in_executor(pool, _render_elsewhere, source, dict(scope), _max_seconds())
        except (BrokenProcessPool, pickle.PicklingError, TypeError, AttributeError):
            outcome = None  # the thread below does it
        if outcome is not None:
            kind, value, seen = outcome
            env = scope.get("env")
            if seen and isinstance(env, EnvView):
                env.seen |= seen  # values the child read, masked in records as if read here
            if kind == "ok":
                return value
            cls = ExpressionLimit if kind == "limit" else TemplateError
            err = cls(value["limit"], value["message"]) if cls is ExpressionLimit else cls(value["message"])
            err.field, err.hint = value["field"], value["hint"]
            raise err
    return await loop.run_in_executor(_thread_pool(), render, scope)


def _render_elsewhere(source: tuple[Any, str | None], scope: dict[str, Any],
                      seconds: float) -> tuple[str, Any, set[str]]:
    """In the expression process: compile and render with the full bounds; errors come back as data (they pickle)."""
    value, where = source
    _seconds[0], _seconds[1] = seconds, time.monotonic()  # the caller's FM_EXPR_MAX_SECONDS
    env = scope.get("env")
    try:
        out: Any = compile_value(value, where=where)[0](scope)
        kind = "ok"
    except TemplateError as exc:
        kind = "limit" if isinstance(exc, ExpressionLimit) else "template"
        out = {"message": exc.message, "field": exc.field, "hint": exc.hint, "limit": getattr(exc, "limit", None)}
    return kind, out, set(getattr(env, "seen", ()))


def _thread_pool() -> Any:
    if not _pools.get("thread"):
        from concurrent.futures import ThreadPoolExecutor

        _pools["thread"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fm-expressions")
    return _pools["thread"]


def prepare_off_loop() -> None:
    """Start the expression process now (a server calls it before it serves): its launch then costs no request."""
    if "process" not in _pools:
        _start_process_pool()


def _start_process_pool() -> None:
    pool = _process_pool()
    if pool is not None:
        try:
            pool.submit(int).result(timeout=60)  # the worker process starts on the first task
        except Exception:  # noqa: BLE001 - no worker here: the thread does the work
            _pools["process"] = None


def _lower_priority() -> None:
    """In the expression process: a lower CPU priority, so on a busy machine the server's loop is scheduled first."""
    try:
        os.nice(10)
    except OSError:  # pragma: no cover - not allowed here: same priority, still a separate interpreter
        pass


def _process_pool() -> Any:
    if "process" not in _pools:
        try:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            import atexit

            context = multiprocessing.get_context("forkserver")
            # the server process preloads this module, not the program's __main__ (fm, pytest...)
            context.set_forkserver_preload(["flowmason.kernel.templating"])
            pool = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_lower_priority)
            atexit.register(pool.shutdown, wait=True, cancel_futures=True)
            _pools["process"] = pool
        except (OSError, ImportError, ValueError):  # no semaphores here (Lambda): threads only
            _pools["process"] = None
    return _pools["process"]


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

    __slots__ = ("text", "where", "_path", "_ast", "_reads", "_alts", "_paths")

    def __init__(self, text: str, where: str | None = None) -> None:
        self.text = text
        self.where = where  # the config field it sits in, for errors
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
        ev.start(scope, offload=_local.offload, seconds=_max_seconds())
        try:
            return check_result(ev.eval(self.text, previously_parsed=self._ast), ev._clock)
        except ExpressionLimit as exc:
            shown = self.text if len(self.text) <= 120 else self.text[:117] + "..."
            exc.message = f"'{{{{{shown}}}}}' stopped: {exc.message}"
            exc.args = (exc.message,)
            exc.field = exc.field or self.where
            raise
        except (TemplateError, Offload):
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


def compile_value(value: Any, sink: list[Expr] | None = None, *, where: str | None = None) -> tuple[Renderer, bool]:
    """Compile a config value; returns (renderer, is_dynamic). Static values render to themselves.

    ``sink``, when given, collects every compiled expression (for the plan's static checks).
    ``where`` names the value's place (``config``): bound errors name the field inside it (``config.prompt``).
    A dynamic renderer keeps ``source`` (value, where), so another process can compile it again.
    """
    render, dynamic = _compile(value, sink, where)
    if dynamic:
        try:
            render.source = (value, where)  # type: ignore[attr-defined]
        except AttributeError:  # a bound method (one whole template): a partial can hold it
            render = functools.partial(render)
            render.source = (value, where)  # type: ignore[attr-defined]
    return render, dynamic


def _compile(value: Any, sink: list[Expr] | None, where: str | None) -> tuple[Renderer, bool]:
    if isinstance(value, str):
        if "{{" not in value:
            return _const(value), False
        parts = _TEMPLATE.split(value)
        if len(parts) == 3 and parts[0] == "" and parts[2] == "":
            expr = Expr(parts[1], where)
            if sink is not None:
                sink.append(expr)
            return expr.evaluate, True
        compiled: list[Any] = []
        for i, part in enumerate(parts):
            if i % 2:
                compiled.append(Expr(part, where))
                if sink is not None:
                    sink.append(compiled[-1])
            elif part:
                compiled.append(part)

        def render(scope: Mapping[str, Any]) -> str:
            return "".join(p if isinstance(p, str) else _stringify(p.evaluate(scope)) for p in compiled)

        return render, True
    if isinstance(value, dict):
        items = [(k, *_compile(v, sink, f"{where}.{k}" if where else None)) for k, v in value.items()]
        if not any(dyn for _, _, dyn in items):
            return _const(value), False
        pairs = [(k, r) for k, r, _ in items]
        return (lambda scope: {k: r(scope) for k, r in pairs}), True
    if isinstance(value, list):
        items2 = [_compile(v, sink, f"{where}[{i}]" if where else None) for i, v in enumerate(value)]
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
