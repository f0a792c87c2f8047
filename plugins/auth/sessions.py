"""Session tokens: short access JWTs, long refresh JWTs, rotation with reuse detection.

A login opens a *session* (a refresh-token family) stored under
``pk="auth#session#{sid}"``. Its item names the one refresh token that is
currently valid (``current`` = its ``jti``). Refreshing swaps that jti with
a conditional write (so two refreshes racing with one token cannot both
win) and hands out a new pair. A refresh token that is not the current one
has been used before, which means it was copied: the whole family is
revoked, and every access token of the session dies with it, because
verification of an access token reads its session item (one store read).

Claims: ``iss``, ``aud``, ``sub`` (user), ``org``, ``sid`` (session),
``jti``, ``iat``, ``nbf``, ``exp``, ``typ`` (``access``/``refresh``). The
type is checked, so a refresh token is never accepted as an access token.
"""
from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from flowmason.kernel.errors import ConditionFailedError
from flowmason.kernel.storage import Store

from .errors import InvalidCredentials, TokenReuseDetected
from .keys import KeyRing
from .settings import AuthSettings


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                "token_type": "Bearer", "expires_in": self.expires_in}


def _session_pk(sid: str) -> str:
    return f"auth#session#{sid}"


class SessionService:
    def __init__(self, store: Store, keys: KeyRing, settings: AuthSettings) -> None:
        self.store = store
        self.keys = keys
        self.settings = settings

    # -- tokens --
    def _encode(self, claims: dict[str, Any], ttl: int) -> str:
        import jwt

        key = self.keys.signing_key()
        now = int(time.time())
        body = {"iss": self.settings.issuer, "aud": self.settings.audience, "iat": now, "nbf": now,
                "exp": now + ttl, "jti": secrets.token_urlsafe(16), **claims}
        return jwt.encode(body, key.signing, algorithm=key.alg, headers={"kid": key.kid})

    def decode(self, token: str, typ: str) -> dict[str, Any]:
        """Verify signature, algorithm, key id, issuer, audience, times and type; return the claims."""
        import jwt

        if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
            raise InvalidCredentials("malformed token")
        try:
            # read the header ourselves (PyJWT parses the whole token again in decode below)
            header = json.loads(base64.urlsafe_b64decode(token[:token.index(".")] + "=="))
            if not isinstance(header, dict):
                raise ValueError
        except ValueError:
            raise InvalidCredentials("malformed token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg != self.settings.algorithm or not isinstance(kid, str):
            raise InvalidCredentials("token algorithm or key id not accepted")
        key = self.keys.verifying_key(kid)
        if key is None or key.alg != alg:
            raise InvalidCredentials("token signed by an unknown key")
        try:
            claims = jwt.decode(
                token, key.verifying, algorithms=[key.alg], audience=self.settings.audience,
                issuer=self.settings.issuer, leeway=self.settings.leeway,
                options={"require": ["exp", "iat", "nbf", "sub", "jti", "sid", "typ"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidCredentials("token expired", hint="refresh it or log in again") from None
        except jwt.PyJWTError:
            raise InvalidCredentials("token rejected") from None
        if claims.get("typ") != typ:
            raise InvalidCredentials(f"not an {typ} token")
        return claims

    # -- sessions --
    def open(self, user_id: str, org_id: str, *, method: str = "password", extra: dict | None = None) -> TokenPair:
        sid = secrets.token_urlsafe(16)
        return self._issue(sid, user_id, org_id, None, method=method, extra=extra)

    def _issue(self, sid: str, user_id: str, org_id: str, version: int | None, *, method: str,
               extra: dict | None = None, created_at: float | None = None) -> TokenPair:
        s = self.settings
        rjti = secrets.token_urlsafe(16)
        refresh = self._encode({"sub": user_id, "org": org_id, "sid": sid, "typ": "refresh", "jti": rjti},
                               s.refresh_ttl)
        now = time.time()
        data = {"user_id": user_id, "org_id": org_id, "current": rjti, "revoked": False, "method": method,
                "created_at": created_at or now, "rotated_at": now, **(extra or {})}
        try:
            if version is None:
                self.store.put(_session_pk(sid), "meta", data, if_absent=True, expires_at=now + s.refresh_ttl)
                self.store.put(f"auth#user#{user_id}", f"session#{sid}", {"org_id": org_id},
                               expires_at=now + s.refresh_ttl)
            else:
                self.store.put(_session_pk(sid), "meta", data, if_version=version, expires_at=now + s.refresh_ttl)
        except ConditionFailedError:
            # another refresh with the same token won the race: one token, two uses
            self.revoke(sid)
            raise TokenReuseDetected("refresh token used twice; the session is revoked",
                                     hint="log in again") from None
        access = self._encode({"sub": user_id, "org": org_id, "sid": sid, "typ": "access"}, s.access_ttl)
        return TokenPair(access, refresh, s.access_ttl, sid)

    def refresh(self, token: str) -> TokenPair:
        claims = self.decode(token, "refresh")
        item = self.store.get(_session_pk(claims["sid"]), "meta")
        if item is None or item.data.get("revoked"):
            raise InvalidCredentials("session ended", hint="log in again")
        if not secrets.compare_digest(item.data["current"], claims["jti"]):
            self.revoke(claims["sid"])
            raise TokenReuseDetected("refresh token was already used; the session is revoked", hint="log in again")
        extra = {k: v for k, v in item.data.items()
                 if k not in ("user_id", "org_id", "current", "revoked", "method", "created_at", "rotated_at")}
        return self._issue(claims["sid"], item.data["user_id"], item.data["org_id"], item.version,
                           method=item.data.get("method", "password"), extra=extra,
                           created_at=item.data.get("created_at"))

    def verify_access(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(claims, session data) of a valid access token of a live session."""
        claims = self.decode(token, "access")
        item = self.store.get(_session_pk(claims["sid"]), "meta")
        if item is None or item.data.get("revoked") or item.data.get("user_id") != claims["sub"]:
            raise InvalidCredentials("session ended", hint="log in again")
        return claims, item.data

    def session(self, sid: str) -> dict | None:
        item = self.store.get(_session_pk(sid), "meta")
        return item.data if item else None

    def revoke(self, sid: str) -> bool:
        """End a session: its refresh family and its access tokens. Idempotent."""
        for _ in range(5):  # bounded retries against concurrent rotation
            item = self.store.get(_session_pk(sid), "meta")
            if item is None:
                return False
            if item.data.get("revoked"):
                return True
            try:
                self.store.put(_session_pk(sid), "meta", dict(item.data, revoked=True, revoked_at=time.time()),
                               if_version=item.version, expires_at=item.expires_at)
                return True
            except ConditionFailedError:
                continue
        return False

    def revoke_user(self, user_id: str) -> int:
        """End every session of a user (password reset, account compromise)."""
        count, cursor = 0, None
        for _ in range(1000):
            page = self.store.query(f"auth#user#{user_id}", prefix="session#", cursor=cursor, limit=100)
            for item in page.items:
                count += self.revoke(item.sk[len("session#"):])
            cursor = page.cursor
            if not cursor:
                break
        return count
