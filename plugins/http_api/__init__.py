"""The HTTP API: one ASGI app assembled from plugin routes; this plugin adds pipelines and runs.

Served by uvicorn (``fm serve``) and by mangum on Lambda
(``flowmason.functions.api``). Importing this package is cheap: starlette
loads only when the app is built.

The contracts other plugins build on (routes, identity, authenticators,
rate limiters, errors) are documented with their hooks in
``flowmason.kernel.hookspecs`` (``fm_register_routes``,
``fm_register_authenticators``, ``fm_register_rate_limiters``). When no
authenticator is registered the app runs in local single-user mode: every
request is the default organization's owner, whose data shares the root
namespace with ``fm run`` (``kernel.runs.namespace``).

Public names (``__all__``): ``ApiError`` and ``read_body``, the two pieces
of this package other plugins may import; everything else here is private.
They load on first use, so importing the package stays free of starlette.
"""
from __future__ import annotations

from typing import Any

from flowmason.kernel.plugins import hookimpl

__all__ = ["ApiError", "read_body"]
# runs start, cancel and (under `fm serve`) execute on the durable engine
REQUIRES = ("durable", "loaders")
# the run event stream reads the events plugin's log when it is loaded; without it, settled stages
USES = ("events",)


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(name)


@hookimpl
def fm_register_routes(register):
    from .routes import register_routes

    register_routes(register)


@hookimpl
def fm_register_commands(app):
    from .serve import add_serve_command

    add_serve_command(app)
