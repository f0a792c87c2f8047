"""Word-level diff of two prompts or outputs by longest common subsequence.

Text is split into words, runs of punctuation and runs of whitespace, so
joining the tokens gives the text back exactly. The common prefix and suffix
are stripped first (prompts that differ in one phrase cost almost nothing);
the middle is aligned by a classic LCS table. difflib is not used for that
part: its matcher finds long matching blocks, not the longest common
subsequence, and can report more change than there is. When the middle is
too large for a table (``MAX_CELLS``) it falls back to difflib and says so
(``Diff.exact`` is False).

The result is a list of ``(op, text)`` with op ``equal``, ``delete`` or
``insert``; adjacent pieces with the same op are merged. Renderers: plain
text (``[-old-]{+new+}``, as ``git diff --word-diff``), rich ``Text`` for
the terminal, and an HTML fragment or page.
"""
from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from typing import Any

MAX_CELLS = 4_000_000
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]+")

EQUAL, DELETE, INSERT = "equal", "delete", "insert"


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


@dataclass
class Diff:
    ops: list[tuple[str, str]] = field(default_factory=list)
    exact: bool = True  # False when the difflib fallback aligned a very large middle

    @property
    def changed(self) -> bool:
        return any(op != EQUAL for op, _ in self.ops)

    def stats(self) -> dict[str, int]:
        out = {EQUAL: 0, DELETE: 0, INSERT: 0}
        for op, text in self.ops:
            out[op] += sum(1 for t in tokenize(text) if not t.isspace())
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"ops": [list(o) for o in self.ops], "exact": self.exact, "stats": self.stats()}


def _lcs_middle(a: list[str], b: list[str]) -> list[tuple[str, str]]:
    n, m = len(a), len(b)
    # lengths[i][j] = LCS of a[i:] and b[j:]; rows as lists of ints
    lengths = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = lengths[i], lengths[i + 1]
        ai = a[i]
        for j in range(m - 1, -1, -1):
            row[j] = below[j + 1] + 1 if ai == b[j] else (below[j] if below[j] >= row[j + 1] else row[j + 1])
    ops: list[tuple[str, str]] = []
    i = j = 0
    while i < n and j < m:
        if a[i] == b[j]:
            ops.append((EQUAL, a[i]))
            i += 1
            j += 1
        elif lengths[i + 1][j] >= lengths[i][j + 1]:
            ops.append((DELETE, a[i]))
            i += 1
        else:
            ops.append((INSERT, b[j]))
            j += 1
    ops.extend((DELETE, t) for t in a[i:])
    ops.extend((INSERT, t) for t in b[j:])
    return ops


def _difflib_middle(a: list[str], b: list[str]) -> list[tuple[str, str]]:
    import difflib

    ops: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            ops.extend((EQUAL, t) for t in a[i1:i2])
        else:
            ops.extend((DELETE, t) for t in a[i1:i2])
            ops.extend((INSERT, t) for t in b[j1:j2])
    return ops


def _merge(ops: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for op, text in ops:
        if not text:
            continue
        if out and out[-1][0] == op:
            out[-1] = (op, out[-1][1] + text)
        else:
            out.append((op, text))
    return out


def diff_texts(old: str, new: str) -> Diff:
    """Word-level LCS diff of two strings."""
    a, b = tokenize(old), tokenize(new)
    start = 0
    while start < len(a) and start < len(b) and a[start] == b[start]:
        start += 1
    end = 0
    while end < len(a) - start and end < len(b) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    mid_a, mid_b = a[start: len(a) - end], b[start: len(b) - end]
    exact = (len(mid_a) + 1) * (len(mid_b) + 1) <= MAX_CELLS
    middle = _lcs_middle(mid_a, mid_b) if exact else _difflib_middle(mid_a, mid_b)
    ops = [(EQUAL, t) for t in a[:start]] + middle + [(EQUAL, t) for t in a[len(a) - end:]]
    return Diff(_merge(ops), exact)


def as_text(value: Any) -> str:
    """What is compared for a non-string value: its JSON, keys sorted, one field per line."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def diff_values(old: Any, new: Any) -> Diff:
    return diff_texts(as_text(old), as_text(new))


def render_text(diff: Diff) -> str:
    parts = []
    for op, text in diff.ops:
        parts.append(text if op == EQUAL else f"[-{text}-]" if op == DELETE else f"{{+{text}+}}")
    return "".join(parts)


def render_rich(diff: Diff) -> Any:
    from rich.text import Text

    out = Text()
    for op, text in diff.ops:
        out.append(text, style="" if op == EQUAL else "bold red strike" if op == DELETE else "bold green underline")
    return out


_CSS = ("del{background:#fdd;color:#900;text-decoration:line-through}ins{background:#dfd;color:#060;text-decoration:none}"
        "pre.fm-diff{white-space:pre-wrap;font:14px/1.45 ui-monospace,monospace;padding:12px;border:1px solid #ddd}")


def render_html(diff: Diff, *, title: str | None = None, page: bool = False) -> str:
    """An HTML fragment (``<pre class="fm-diff">``), or a whole page with its CSS when ``page``."""
    body = "".join(
        html.escape(text) if op == EQUAL else f"<{'del' if op == DELETE else 'ins'}>{html.escape(text)}</{'del' if op == DELETE else 'ins'}>"
        for op, text in diff.ops
    )
    frag = f'<pre class="fm-diff">{body}</pre>'
    if not page:
        return frag
    head = f"<title>{html.escape(title or 'diff')}</title>"
    heading = f"<h1>{html.escape(title)}</h1>" if title else ""
    return f'<!doctype html><html><head><meta charset="utf-8">{head}<style>{_CSS}</style></head><body>{heading}{frag}</body></html>'
