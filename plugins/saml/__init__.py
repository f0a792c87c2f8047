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

from flowmason.kernel.plugins import hookimpl

from .config import IdpConfig, SamlConfig, SpConfig
from .service import configure, get_config, get_service

__all__ = ["IdpConfig", "SamlConfig", "SpConfig", "configure", "get_config", "get_service"]


@hookimpl
def fm_register_routes(register):
    from flowmason.plugins.auth import settings as auth_settings

    if auth_settings().enabled and get_config() is not None:
        from .routes import register_routes

        register_routes(register)
