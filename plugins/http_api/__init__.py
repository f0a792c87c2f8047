"""The HTTP API: one ASGI app assembled from plugin routes; this plugin adds pipelines and runs.

Served by uvicorn (``fm serve``) and by mangum on Lambda
(``flowmason.functions.api``). Importing this package is cheap: starlette
loads only when the app is built.

The contract other plugins build on
-----------------------------------

**Routes** — ``fm_register_routes(register)``; call
``register(method, path, endpoint, name=, auth=, summary=, request_model=,
response_model=, status_code=, tags=)``. ``endpoint(request)`` is a
starlette request handler, sync (run in a thread) or async. It may return a
starlette ``Response``, or something JSON-able (dict, list, pydantic model),
or ``(status, that)``. ``auth`` names the scope the route needs
(``"read"``, ``"run"``, ``"write"``; an identity holding ``"*"`` or
``"admin"`` passes every check) or ``None`` for a public route. With a
``request_model`` the body is read (at most ``FM_MAX_BODY_BYTES``, default
1 MiB, else 413), parsed as a JSON object and validated; the model instance
is ``request.state.body`` and the raw dict ``request.state.json``.

**Identity** — ``request.state.identity`` is a dict
``{"subject", "org_id", "roles", "scopes"}`` or ``None`` (public route,
nobody authenticated). Data is stored per tenant under the namespace
``f"org#{org_id}#"``.

**Authenticators** — ``fm_register_authenticators(register)``; call
``register(name, authenticator)``. ``authenticator.authenticate(request)``
(or the object itself, if it is a callable), sync or async, returns an
identity dict or ``None`` (not mine: try the next). The first identity
wins. It may raise ``ApiError(401, "unauthorized", ...)`` to refuse
outright (a forged or expired token). **When no authenticator is
registered the app runs in local single-user mode**: every request is
``{"subject": "local", "org_id": "default", "roles": ["owner"], "scopes": ["*"]}``.

**Rate limiters** — ``fm_register_rate_limiters(register)``; call
``register(name, limiter)`` with an object that has ``check(request,
identity)`` or a no-argument factory returning one (called once, when the
app is built). ``check`` (sync or async) returns ``None`` to allow, or a dict
``{"allowed": bool, "retry_after": seconds, "headers": {...}}``; headers are
added to the response either way (``RateLimit-*``), and a refusal becomes
429 with ``Retry-After``.

**Errors** — every error response is
``{"error": {"code", "message", "field", "hint"}}`` (plus ``stage``,
``pipeline`` or ``problems`` when they apply). Raise a kernel
``FlowMasonError`` (its ``code`` picks the status: ``not_found`` 404,
``conflict`` 409, ``bad_input``/``validation`` 422, ...) or ``ApiError``
with an explicit status. Unexpected exceptions become a 500 that does not
echo their text.

**Bodies** — an endpoint without a ``request_model`` that reads the body
itself (a form post) calls ``await read_body(request, limit)``: the bytes,
or a 413 before more than ``limit`` bytes are read.

Public names (``__all__``): ``ApiError`` and ``read_body``, the two pieces
of this package other plugins may import; everything else here is private.
They load on first use, so importing the package stays free of starlette.
"""
from __future__ import annotations

from typing import Any

from flowmason.kernel.plugins import hookimpl

__all__ = ["ApiError", "read_body"]
# runs start, cancel and (under `fm serve`) execute on the durable engine
REQUIRES = ("durable",)


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
