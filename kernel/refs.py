"""What a template expression reads: the names it uses and the dotted paths it follows.

``analyze(tree)`` walks a parsed expression (Python's ``ast``, as
simpleeval parses it) once, when the template is compiled, and returns

- ``names``: the free names it reads (``input``, ``upstream``, ``inptu``...),
  without comprehension variables (``[r for r in data]``) or called
  functions;
- ``functions``: the names it calls (``now()``, ``len(...)``);
- ``paths``: each constant chain of attributes and subscripts from a
  name, ``upstream.fetch-data.body`` as ``("upstream", "fetch-data",
  "body")``, with whether it is *lenient*: an operand of ``or`` / ``and``
  other than the last, or an ``if`` test, where a missing value is a
  legitimate "not there, use the default" (``{{upstream.a.x or 'none'}}``).

It also marks each step below a stage's output
(``upstream.<stage>.<field>...``) that is not lenient, with the path up to
it (``node.fm_ref``), so that evaluation can refuse a missing field there
instead of rendering null (or a bare KeyError), and each step of a lenient
path (``node.fm_lenient``), where a missing key reads as null. A method call (``upstream.a.get('x')``) ends a
path: the method is not a field.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field


@dataclass
class Reads:
    names: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    paths: list[tuple[tuple[str, ...], bool]] = field(default_factory=list)


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


def analyze(tree: ast.AST) -> Reads:
    reads = Reads()
    _visit(tree, reads, False, frozenset())
    return reads


def _chain(node: ast.AST) -> tuple[ast.AST, list[str], list[ast.AST]]:
    """The base of an attribute/constant-subscript chain, its steps and the step nodes, outermost last."""
    steps: list[str] = []
    nodes: list[ast.AST] = []
    cur = node
    while True:
        if isinstance(cur, ast.Attribute):
            steps.append(cur.attr)
        elif (isinstance(cur, ast.Subscript) and isinstance(cur.slice, ast.Constant)
              and isinstance(cur.slice.value, (str, int)) and not isinstance(cur.slice.value, bool)):
            steps.append(str(cur.slice.value))
        else:
            break
        nodes.append(cur)
        cur = cur.value  # type: ignore[attr-defined]
    return cur, steps[::-1], nodes[::-1]


def _visit(node: ast.AST, reads: Reads, lenient: bool, bound: frozenset[str]) -> None:
    if isinstance(node, (ast.Attribute, ast.Subscript)):
        base, steps, nodes = _chain(node)
        if not nodes:  # a subscript by a computed key: `x[i]`
            for child in ast.iter_child_nodes(node):
                _visit(child, reads, lenient, bound)
            return
        if isinstance(base, ast.Name):
            if base.id not in bound:
                reads.names.add(base.id)
                path = (base.id, *steps)
                reads.paths.append((path, lenient))
                if lenient:
                    for step in nodes:
                        step.fm_lenient = True  # type: ignore[attr-defined]  # `x['k'] or d`: a missing key is None
                elif base.id == "upstream":
                    for i, step in enumerate(nodes):
                        if i >= 1:
                            step.fm_ref = path[: i + 2]  # type: ignore[attr-defined]
        else:
            _visit(base, reads, lenient, bound)
        return
    if isinstance(node, ast.Name):
        if node.id not in bound:
            reads.names.add(node.id)
        return
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            if func.id not in bound:
                reads.functions.add(func.id)
        elif isinstance(func, ast.Attribute):
            _visit(func.value, reads, lenient, bound)  # `x.get(...)`: `get` is a method, not a field
        else:
            _visit(func, reads, lenient, bound)
        for arg in node.args:
            _visit(arg, reads, lenient, bound)
        for kw in node.keywords:
            _visit(kw.value, reads, lenient, bound)
        return
    if isinstance(node, ast.BoolOp):
        last = len(node.values) - 1
        for i, value in enumerate(node.values):
            _visit(value, reads, lenient or i < last, bound)
        return
    if isinstance(node, ast.IfExp):
        _visit(node.test, reads, True, bound)
        _visit(node.body, reads, lenient, bound)
        _visit(node.orelse, reads, lenient, bound)
        return
    if isinstance(node, _COMPREHENSIONS):
        inner = bound
        for gen in node.generators:
            _visit(gen.iter, reads, lenient, inner)
            inner = inner | {n.id for n in ast.walk(gen.target) if isinstance(n, ast.Name)}
            for cond in gen.ifs:
                _visit(cond, reads, lenient, inner)
        if isinstance(node, ast.DictComp):
            _visit(node.key, reads, lenient, inner)
            _visit(node.value, reads, lenient, inner)
        else:
            _visit(node.elt, reads, lenient, inner)
        return
    for child in ast.iter_child_nodes(node):
        _visit(child, reads, lenient, bound)
