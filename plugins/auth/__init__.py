"""Identity for the HTTP API: accounts, sessions (JWT), API keys, password reset, organizations.

Off by default so the laptop CLI stays single-user: set ``FM_AUTH=1`` (or
call ``configure(AuthSettings(enabled=True), store=...)``) before the
registry is built, and the plugin registers

- the ``flowmason`` authenticator (``Authorization: Bearer <access token |
  API key>`` or ``X-API-Key``), which the HTTP API consults on every
  route that needs a scope; the identity it returns is
  ``{"subject", "org_id", "roles", "scopes", "kind", ...}``;
- the ``/auth/...`` routes (see ``routes.py``).

Pieces: ``passwords`` (bcrypt + legacy upgrade + policy), ``keys``
(signing keys, rotation) + ``sealing`` (keys encrypted at rest: KMS or a
key file), ``sessions`` (access/refresh tokens, rotation, reuse
detection), ``apikeys``, ``reset`` + ``mail`` (password reset by email),
``signup`` (self-registration when open, invitations), ``throttle``
(login backoff per account and client), ``directory`` (users,
organizations, roles), ``service`` (the facade and the authenticator).
Settings are listed in ``settings.py``.

Public names (``__all__``, what other plugins such as ``saml`` import):
``AuthService``, ``AuthSettings``, ``Authenticator``, ``configure``,
``current_settings`` (the process's settings), ``get_service``.
"""
from __future__ import annotations

from typing import Any

from flowmason.kernel.plugins import hookimpl

__all__ = ["AuthService", "AuthSettings", "Authenticator", "configure", "current_settings", "get_service"]


def __getattr__(name: str) -> Any:
    # loaded on first use: every `fm` start registers this plugin, few use it
    if name == "AuthSettings":
        from .settings import AuthSettings

        return AuthSettings
    if name == "current_settings":
        # not exported as `settings`: that is also the name of the submodule, which shadows
        # this lookup as soon as anything imports `.settings`
        from .service import settings

        return settings
    if name in __all__:
        from . import service

        return getattr(service, name)
    raise AttributeError(name)


@hookimpl
def fm_register_authenticators(register):
    from .service import Authenticator, settings

    if settings().enabled:
        register("flowmason", Authenticator())


@hookimpl
def fm_register_routes(register):
    from .service import settings

    if settings().enabled:
        from .routes import register_routes

        register_routes(register)


@hookimpl
def fm_register_commands(app):
    from .cli import add_auth_commands

    add_auth_commands(app)
