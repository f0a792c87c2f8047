"""Animated execution: frames of a run, a player, exporters, and the terminal run view.

``frames`` (tracks, frames, ``FrameRecorder`` listener, ``Player``),
``render`` (layout, SVG, Mermaid, Markdown, JSON), ``html`` (the
self-contained animated page), ``exporters`` (registered through
``fm_register_exporters``), ``view`` (terminal table, ``fm watch``), ``cli``
(``fm export``, ``fm play``, ``fm watch``).

Recorded runs are read through the kernel's ``RunRepository``; the
pipeline definition of a run exported without a file comes from time
travel's public read API when that plugin is loaded (optional: ``USES``).
"""
from __future__ import annotations

from flowmason.kernel.plugins import hookimpl

# optional plugins: used when loaded, never imported otherwise (short names as in FM_PLUGINS)
USES = ("timetravel",)


@hookimpl
def fm_register_exporters(register):
    from .exporters import EXPORTERS

    for name, fn in EXPORTERS.items():
        register(name, fn)


@hookimpl
def fm_register_commands(app):
    from .cli import register_commands

    register_commands(app)


@hookimpl
def fm_register_routes(register):
    from .routes import register_routes

    register_routes(register)
