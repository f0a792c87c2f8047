"""SAML 2.0 single sign-on and single logout for the HTTP API (a service provider).

Inert unless both ``FM_AUTH=1`` (sessions come from the auth plugin) and
``FM_SAML_CONFIG`` (a JSON file, see ``config.py``) are set, or
``configure(SamlConfig)`` is called. Then it adds the
``/auth/saml/{idp}/...`` routes (``routes.py``). The checks the assertion
consumer makes are listed in ``sp.py``; signing and verification are
signxml's (``xmltools.py``). The identity provider the tests use (real key
pairs, real signatures) is ``tests/support/saml_idp.py``, not shipped.

SAML extends the auth plugin (it logs people into auth's accounts and
issues auth's sessions) and serves routes through the HTTP API, so it
declares both in ``REQUIRES`` and imports only their public names
(``flowmason.plugins.auth``: ``current_settings``, ``get_service``;
``flowmason.plugins.http_api``: ``read_body``). Going through a hook
instead would only hide that dependency: without auth there is nothing
for SAML to sign anyone into.
"""
from __future__ import annotations

from typing import Any

from flowmason.kernel.plugins import hookimpl

_HOME = {"IdpConfig": "config", "SamlConfig": "config", "SpConfig": "config", "configure": "service",
         "get_config": "service", "get_service": "service"}
__all__ = sorted(_HOME)

# plugins this one cannot work without (short names as in FM_PLUGINS)
REQUIRES = ("auth", "http_api")


def __getattr__(name: str) -> Any:
    # loaded on first use: every `fm` start registers this plugin, few use it
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(name)


@hookimpl
def fm_register_routes(register):
    from .service import _config, get_config

    from flowmason.kernel.settings import get_settings

    if _config is None and not get_settings().saml_config:
        return  # not configured: nothing to import
    from flowmason.plugins.auth import current_settings as auth_settings

    if auth_settings().enabled and get_config() is not None:
        from .routes import register_routes

        register_routes(register)
