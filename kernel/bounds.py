"""Bounds on one expression's evaluation: work, memory, result size and time, so a pipeline cannot stall a server.

simpleeval's own limits stop ``'a' * 10**9`` and ``9**9**9`` but not
``'x'.ljust(10**9)`` (a method allocating 1 GB), ``[[1]*100000 for i in
range(2000)]`` (each piece under the limits, 1.6 GB together) nor
``sum([sum(range(100000)) for i in range(10000)])`` (10^9 additions in C).
``Bounded`` (the evaluator ``kernel/templating.py`` uses) adds, per
evaluation:

- **work**: one unit per node evaluated, plus the items every built-in
  call or method touches (``sum(range(n))`` costs n), at most ``MAX_WORK``;
- **size**: no value built may hold more than ``MAX_SIZE`` items or
  characters; width and count arguments are checked *before* the call
  (``ljust``/``rjust``/``center``/``zfill``/``expandtabs``/``replace``/
  ``join``, f-string and ``%`` widths, ``**`` and ``*`` on big ints, list
  growth by ``extend``/``append``), and ``str()``/``to_json()``/f-strings of a
  container are weighed first;
- **memory**: at most ``MAX_ALLOCATED`` items or characters built in total;
- **result**: the value an expression returns weighs at most
  ``MAX_RESULT`` (about its JSON size), as it goes into records and events;
- **time**: ``FM_EXPR_MAX_SECONDS`` (default 1 s) of wall time.

Going past one fails the stage with an ``ExpressionLimit`` naming the
limit, the stage and the config field.

The fast path: every evaluation starts on the caller's thread with a small
budget (``INLINE_WORK``, well under a millisecond for the expressions
pipelines write). When the executor renders a stage's config it allows
``Offload``: past that budget the evaluation stops and the executor
finishes the config elsewhere (``templating.render_off_loop``: the one
expression process, else the one expression thread), so the event loop
(an API's requests) keeps running while a slow expression works. On that
thread the evaluation sleeps 1 ms every 4 ms so the loop gets the GIL.
Expressions a component evaluates itself (a foreach filter) finish
in-line within the same limits (at most ``FM_EXPR_MAX_SECONDS`` each).

simpleeval walks every container a node returns (its check for hidden
modules and functions); that walk is charged as work too.
"""
from __future__ import annotations

import ast
import re
import threading
import time
from typing import Any

from .errors import TemplateError

MAX_SIZE = 1_000_000  # items or characters in any one value an expression builds
MAX_ALLOCATED = 5_000_000  # items or characters built by one evaluation in total
MAX_RESULT = 10_000_000  # weight (about the JSON size) of what an expression returns
MAX_WORK = 20_000_000  # nodes evaluated + items touched by calls, per evaluation
INLINE_WORK = 5_000  # the fast path's budget before a stage config goes off the event loop
MAX_INT_BITS = 1_000_000  # ** and * on integers
_CHECK_TIME_EVERY = 1024  # nodes between clock reads
_CLOCK_MASK = _CHECK_TIME_EVERY - 1
_YIELD_EVERY_S, _YIELD_S = 0.004, 0.001  # off the main thread: sleep 1 ms every 4 ms of evaluation

_WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill"})
_GROW_METHODS = frozenset({"extend", "append", "insert", "update", "add", "setdefault"})
_CONTAINERS = (list, tuple, dict, set, frozenset)
_READERS = frozenset({"get", "pop", "setdefault"})
_SCALARS = frozenset({str, int, float, bool, type(None), bytes})


class ExpressionLimit(TemplateError):
    """An expression went past one of the bounds; ``limit`` says which (size, memory, work, time, result)."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message, hint=_HINTS[limit])
        self.limit = limit


_HINTS = {
    "size": f"expressions build values of at most {MAX_SIZE:,} items or characters; do big work in a component",
    "memory": f"one expression builds at most {MAX_ALLOCATED:,} items or characters in total",
    "work": f"one expression does at most {MAX_WORK:,} steps; loop with foreach or do the work in a component",
    "time": "expressions run at most FM_EXPR_MAX_SECONDS (default 1 s); do long work in a component",
    "result": f"an expression's value weighs at most {MAX_RESULT:,} (about its JSON size)",
}


class Offload(Exception):
    """The fast path's budget is spent: finish this evaluation off the event loop (see ``Bounded.start``)."""


def weight(value: Any, limit: int, tick: Any = None) -> int:
    """About the JSON size of ``value``: characters plus items, counted until past ``limit`` (cycles end there too).

    ``tick()`` is called every few thousand items (the evaluator's clock).
    """
    total = visits = 0
    stack = [value]
    while stack:
        v = stack.pop()
        visits += 1
        if tick is not None and not visits & 4095:
            tick()
        if isinstance(v, (str, bytes)):
            total += len(v) + 2
        elif isinstance(v, dict):
            total += 2 * len(v) + 2
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, _CONTAINERS):
            total += len(v) + 2
            stack.extend(v)
        else:
            total += 8
        if total > limit:
            return total
    return total


def _size(value: Any) -> int:
    try:
        return len(value) if isinstance(value, (str, bytes, *_CONTAINERS, range)) else 0
    except TypeError:  # pragma: no cover - len of a builtin container does not fail
        return 0


def make_evaluator(functions: dict[str, Any], base: type) -> Any:
    """A ``Bounded`` evaluator over simpleeval class ``base`` (the templating module's lenient subclass)."""
    from simpleeval import DISALLOW_FUNCTIONS, FeatureNotAvailable, FunctionNotDefined, SimpleEval

    check_item = SimpleEval._check_disallowed_items

    class Bounded(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__(functions=functions)
            self.operators = {**self.operators, ast.Mult: self._mult, ast.Add: self._add, ast.Pow: self._pow,
                              ast.Mod: self._mod}
            self.start({}, offload=False, seconds=1.0)
            # off the main thread (the expression thread) the evaluation yields the GIL at each clock read
            self.polite = threading.current_thread() is not threading.main_thread()

        def start(self, names: Any, *, offload: bool, seconds: float) -> None:
            """Reset the counters for one evaluation; with ``offload`` the fast path raises ``Offload`` when spent."""
            self.names = names
            self.work = 0
            self.allocated = 0
            self.offload = offload
            self.budget = INLINE_WORK if offload else MAX_WORK
            self.seconds = seconds
            self.yielded = time.perf_counter()
            self.deadline = self.yielded + seconds

        # -- accounting --
        def _spend(self, units: int) -> None:
            self.work += units
            if self.work > self.budget:
                if self.offload:
                    raise Offload()
                raise ExpressionLimit("work", f"the expression does more than {MAX_WORK:,} steps")
            if units >= _CHECK_TIME_EVERY:
                self._clock()

        def _clock(self) -> None:
            now = time.perf_counter()
            if self.polite and now - self.yielded > _YIELD_EVERY_S:
                # a short sleep, not sleep(0): on a busy machine the event loop's thread must get scheduled to take
                # the GIL, and a long evaluation then runs beside the loop instead of over it
                time.sleep(_YIELD_S)
                self.yielded = now = time.perf_counter()
            if now > self.deadline:
                if self.offload:
                    raise Offload()
                raise ExpressionLimit("time", f"the expression ran longer than {self.seconds:g} s")

        def _built(self, value: Any) -> Any:
            n = 0 if isinstance(value, range) else _size(value)  # a range holds three numbers: its cost is iterating
            if n:
                self._fits(n)
                self.allocated += n
                if self.allocated > MAX_ALLOCATED:
                    raise ExpressionLimit("memory", f"the expression builds more than {MAX_ALLOCATED:,} items "
                                                    "or characters in total")
                self._spend(n)
            elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
                self._int_fits(value.bit_length())
            return value

        def _fits(self, n: int, what: str = "a value") -> None:
            if n > MAX_SIZE:
                raise ExpressionLimit("size", f"{what} of {n:,} items or characters (at most {MAX_SIZE:,})")

        @staticmethod
        def _int_fits(bits: int) -> None:
            if bits > MAX_INT_BITS:
                raise ExpressionLimit("size", f"an integer of {bits:,} bits (at most {MAX_INT_BITS:,})")

        def _text_fits(self, value: Any) -> None:
            """str() / JSON / f-string of a container: weigh it before the text is built."""
            if isinstance(value, _CONTAINERS):
                w = weight(value, MAX_SIZE, self._clock)
                self._spend(min(w, MAX_SIZE))
                self._fits(w, "the text of a value")

        def _check_disallowed_items(self, item: Any) -> None:
            # simpleeval walks every container a node returns, each time: that walk is work too (and a cyclic list
            # built with append would never end it)
            if not isinstance(item, _CONTAINERS):
                return check_item(self, item)
            stack = [item]
            visits = 0
            while stack:
                v = stack.pop()
                visits += 1
                if not visits & 4095:
                    self._clock()
                if isinstance(v, _CONTAINERS):
                    items = v.values() if isinstance(v, dict) else v
                    self._spend(len(v) + 8)  # a visit costs more than a node
                    if not set(map(type, items)) <= _SCALARS:  # in C: most containers hold only scalars
                        stack.extend(x for x in items if type(x) not in _SCALARS)
                else:
                    check_item(self, v)

        # -- nodes --
        def _eval(self, node: Any) -> Any:
            # simpleeval's _eval with the counter; written out, not super(): it runs for every node
            self.work = work = self.work + 1
            if work > self.budget or not work & _CLOCK_MASK:
                self._spend(0)
                self._clock()
            try:
                handler = self.nodes[type(node)]
            except KeyError:
                raise FeatureNotAvailable(f"Sorry, {type(node).__name__} is not available in this evaluator") from None
            result = handler(node)
            if type(result) not in _SCALARS:
                self._check_disallowed_items(result)
            return result

        def _eval_call(self, node: Any) -> Any:
            if isinstance(node.func, ast.Attribute):
                func = self._eval(node.func)
            else:
                try:
                    func = self.functions[node.func.id]
                except KeyError:
                    raise FunctionNotDefined(node.func.id, self.expr) from None
                except AttributeError:
                    raise FeatureNotAvailable("Lambda Functions not implemented") from None
                if func in DISALLOW_FUNCTIONS:
                    raise FeatureNotAvailable("This function is forbidden")
            args = [self._eval(a) for a in node.args]
            kwargs = dict(self._eval(k) for k in node.keywords)
            self._before_call(func, args, kwargs)
            result = func(*args, **kwargs)
            self._clock()
            if getattr(func, "__name__", "") in _READERS:
                return result  # an existing value handed back (dict.get), not one built here
            return self._built(result)

        def _before_call(self, func: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
            owner = getattr(func, "__self__", None)
            name = getattr(func, "__name__", "")
            # C loops over the arguments cost their size
            self._spend(sum(_size(a) for a in args) + sum(_size(v) for v in kwargs.values()) + _size(owner))
            if any(func is f for f in self._text_functions):
                for a in args:
                    self._text_fits(a)
            if func is self._sum and len(args) > 1 and isinstance(args[1], _CONTAINERS):
                # sum(lists, []) copies the growing list at each step
                parts = args[0] if isinstance(args[0], _CONTAINERS) else ()
                self._spend(len(parts) * sum(_size(x) for x in parts) // 2)
            if isinstance(owner, (str, bytes)):
                self._text_method(owner, name, args, kwargs)
            elif isinstance(owner, (list, dict, set)) and name in _GROW_METHODS:
                grow = _size(args[0]) if args and name in ("extend", "update") else 1
                self._fits(len(owner) + grow, f"{type(owner).__name__}.{name}")
                self.allocated += grow

        def _text_method(self, owner: Any, name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
            n = len(owner)
            if name in _WIDTH_METHODS:
                width = args[0] if args else kwargs.get("width", 0)
                if isinstance(width, int):
                    self._fits(width, f"str.{name}({width:,})")
            elif name == "expandtabs":
                size = args[0] if args else kwargs.get("tabsize", 8)
                tab = "\t" if isinstance(owner, str) else b"\t"
                if isinstance(size, int):
                    self._fits(n + owner.count(tab) * max(size, 0), f"str.expandtabs({size:,})")
            elif name == "replace" and len(args) >= 2:
                old, new = args[0], args[1]
                if isinstance(old, type(owner)) and isinstance(new, type(owner)):
                    times = owner.count(old) if old else n + 1
                    if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0:
                        times = min(times, args[2])
                    self._fits(n + times * max(len(new) - len(old), 0), "str.replace")
            elif name == "join" and args:
                parts = args[0] if isinstance(args[0], _CONTAINERS) else list(args[0])
                args[0] = parts
                total = n * max(len(parts) - 1, 0) + sum(len(p) for p in parts if isinstance(p, (str, bytes)))
                self._fits(total, "str.join")
            elif name in ("encode", "translate"):
                self._fits(n * 4, f"str.{name}")

        # -- operators (simpleeval's own checks first, ours on top) --
        def _mult(self, a: Any, b: Any) -> Any:
            if isinstance(a, int) and isinstance(b, int):
                self._int_fits(a.bit_length() + b.bit_length())
            return self._built(self._base_ops[ast.Mult](a, b))

        def _add(self, a: Any, b: Any) -> Any:
            return self._built(self._base_ops[ast.Add](a, b))

        def _pow(self, a: Any, b: Any) -> Any:
            if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
                self._int_fits(b * abs(a).bit_length())
            return self._built(self._base_ops[ast.Pow](a, b))

        def _mod(self, a: Any, b: Any) -> Any:
            if isinstance(a, (str, bytes)):  # printf-style widths: '%1000000000d' % 1
                for w in _printf_widths(a):
                    self._fits(w, "a % format width")
                if "*" in (a if isinstance(a, str) else a.decode("latin-1")):
                    for v in b if isinstance(b, tuple) else (b,):
                        if isinstance(v, int):
                            self._fits(abs(v), "a % format width")
                for v in b if isinstance(b, tuple) else (b,):
                    self._text_fits(v)
            return self._built(self._base_ops[ast.Mod](a, b))

        def _eval_formattedvalue(self, node: Any) -> Any:
            value = self._eval(node.value)
            if node.format_spec:
                spec = str(self._eval(node.format_spec))
                for w in _spec_widths(spec):
                    self._fits(w, "an f-string width")
                self._text_fits(value)
                return self._built(("{:" + spec + "}").format(value))
            self._text_fits(value)
            return value

    import simpleeval

    Bounded._base_ops = dict(simpleeval.DEFAULT_OPERATORS)  # type: ignore[attr-defined]
    Bounded._text_functions = tuple(  # type: ignore[attr-defined]
        f for f in (functions.get("str"), functions.get("json"), functions.get("to_json")) if f is not None)
    Bounded._sum = functions.get("sum")  # type: ignore[attr-defined]
    return Bounded()


_PRINTF = re.compile(r"%[-#0 +]*(\d*)(?:\.(\d*))?")
_DIGITS = re.compile(r"\d+")


def _printf_widths(fmt: Any) -> list[int]:
    """Widths and precisions in a printf-style format ('%10.3f' -> [10, 3])."""
    text = fmt if isinstance(fmt, str) else fmt.decode("latin-1")
    return [int(n) for pair in _PRINTF.findall(text) for n in pair if n]


def _spec_widths(spec: str) -> list[int]:
    return [int(n) for n in _DIGITS.findall(spec)]


def check_result(value: Any, tick: Any = None) -> Any:
    """The value an expression returns goes into records and events: it must weigh at most ``MAX_RESULT``."""
    if isinstance(value, _CONTAINERS):
        w = weight(value, MAX_RESULT, tick)
        if w > MAX_RESULT:
            raise ExpressionLimit("result", f"the expression's value weighs more than {MAX_RESULT:,} "
                                            "(about its JSON size)")
    return value
