"""SAML 2.0 single sign-on and single logout for the HTTP API (a service provider).

Inert unless both ``FM_AUTH=1`` (sessions come from the auth plugin) and
``FM_SAML_CONFIG`` (a JSON file, see ``config.py``) are set, or
``configure(SamlConfig)`` is called. Then it adds the
``/auth/saml/{idp}/...`` routes (``routes.py``). The checks the assertion
consumer makes are listed in ``sp.py``; signing and verification are
signxml's (``xmltools.py``). ``testing.py`` is an identity provider for
tests: real key pairs, real signatures.
"""
from __future__ import annotations

from typing import Any

from flowmason.kernel.plugins import hookimpl

_HOME = {"IdpConfig": "config", "SamlConfig": "config", "SpConfig": "config", "configure": "service",
         "get_config": "service", "get_service": "service"}
__all__ = sorted(_HOME)


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
    from flowmason.plugins.auth.service import settings as auth_settings

    if auth_settings().enabled and get_config() is not None:
        from .routes import register_routes

        register_routes(register)
