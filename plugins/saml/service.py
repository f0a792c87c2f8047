"""From a verified SAML login to a FlowMason session, and back out through single logout.

A verified login finds the user by email (creating a password-less
account on first login, which can never log in with a password), makes
them a member of the IdP's organization with its default role if they
are not one yet, and opens a session through the auth plugin. The session
is indexed by (IdP, NameID) with its SessionIndex, so an IdP-initiated
LogoutRequest ends exactly the sessions it names.
"""
from __future__ import annotations

import threading
import time
from typing import Any


from .config import SamlConfig
from .errors import SamlError
from .sp import SamlLogin, ServiceProvider, session_index_pk


class SamlService:
    def __init__(self, config: SamlConfig, auth: Any) -> None:
        self.config = config
        self.auth = auth  # flowmason.plugins.auth.AuthService
        self.sp = ServiceProvider(config, auth.store)

    def login(self, login: SamlLogin) -> dict[str, Any]:
        idp = self.config.idp(login.idp)
        email = login.email(idp.email_attribute)
        if not email:
            raise SamlError("the assertion carries no email", hint=f"release the '{idp.email_attribute}' attribute")
        directory = self.auth.directory
        uid = directory.user_id_for(email)
        if uid is None:
            uid = directory.create_user(email, None)
        if directory.role(idp.org_id, uid) is None:
            if directory.org(idp.org_id) is None:
                raise SamlError(f"the organization {idp.org_id!r} of IdP {idp.name!r} does not exist",
                                hint="fix org_id in the SAML config")
            directory.set_member(idp.org_id, "owner", uid, idp.default_role)
        pair = self.auth.sessions.open(uid, idp.org_id, method="saml", extra={
            "saml_idp": idp.name, "saml_name_id": login.name_id, "saml_name_id_format": login.name_id_format,
            "saml_session_index": login.session_index})
        self.auth.store.put(session_index_pk(idp.name, login.name_id), pair.session_id,
                            {"session_index": login.session_index},
                            expires_at=time.time() + self.auth.settings.refresh_ttl)
        return {**pair.to_dict(), "relay_state": login.relay_state}

    def end_sessions(self, idp: str, name_id: str, session_indexes: list[str]) -> int:
        page = self.auth.store.query(session_index_pk(idp, name_id), limit=1000)
        ended = 0
        for item in page.items:
            if not session_indexes or item.data.get("session_index") in session_indexes:
                ended += self.auth.sessions.revoke(item.sk)
                self.auth.store.delete(item.pk, item.sk)
        return ended


_lock = threading.Lock()
_service: SamlService | None = None
_config: SamlConfig | None = None


def configure(config: SamlConfig | None) -> None:
    """Set the process-wide SAML configuration (tests, embedding); ``None`` returns to FM_SAML_CONFIG."""
    global _service, _config
    with _lock:
        _config, _service = config, None


def get_config() -> SamlConfig | None:
    global _config
    with _lock:
        if _config is None:
            _config = SamlConfig.from_env()
        return _config


def get_service(request=None) -> SamlService:
    global _service
    config = get_config()
    if config is None:
        raise SamlError("SAML is not configured", hint="set FM_SAML_CONFIG")
    from flowmason.plugins.auth import get_service as auth_service

    auth = auth_service(request)
    with _lock:
        if _service is None or _service.auth is not auth:
            _service = SamlService(config, auth)
        return _service


__all__ = ["SamlService", "configure", "get_config", "get_service"]
