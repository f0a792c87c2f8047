"""Prompt and output diff: word-level LCS diffs between runs or snapshots.

``diff.py`` holds the algorithm and renderers; ``sources.py`` picks the
compared text out of a stored run or snapshot; ``fm diff-output A B --stage X``
compares two runs' (or ``RUN@SEQ`` snapshots') prompt, input or output of a
stage as coloured terminal text, plain text or HTML.

``RUN@SEQ`` snapshots come from the timetravel plugin, optional here
(``USES``): see ``sources.py``. The diff functions below are this plugin's
public API (``__all__``); ``fm debug compare`` uses them when loaded.
"""
from __future__ import annotations

from flowmason.kernel.plugins import hookimpl

from .diff import Diff, diff_texts, diff_values, render_html, render_rich, render_text, tokenize

__all__ = ["Diff", "diff_texts", "diff_values", "render_html", "render_rich", "render_text", "tokenize"]
# optional plugins: used when loaded, never imported otherwise (short names as in FM_PLUGINS)
USES = ("timetravel",)


@hookimpl
def fm_register_commands(app):
    from .cli import register_commands

    register_commands(app)


@hookimpl
def fm_register_routes(register):
    from .routes import register_routes

    register_routes(register)
