"""Settings of the identity plugins, read once from the environment (or built in code by tests).

The switch: the laptop CLI stays single-user unless ``FM_AUTH=1`` (or
``AuthSettings(enabled=True)`` passed to ``configure``). When it is off the
plugin registers no authenticator and no routes, and the HTTP API runs in
local single-user mode.

=========================  ===========================================  =================
variable                   meaning                                      default
=========================  ===========================================  =================
FM_AUTH                    1 turns authentication on                    off
FM_AUTH_STORE              store URL for users, sessions, keys          the API's store
FM_JWT_ALGORITHM           EdDSA, ES256, RS256 or HS256                 EdDSA
FM_JWT_ISSUER/AUDIENCE     ``iss`` / ``aud`` claims                     flowmason / flowmason-api
FM_ACCESS_TTL              access token lifetime, seconds               3600 (1 hour)
FM_REFRESH_TTL             refresh token lifetime, seconds              2592000 (30 days)
FM_BCRYPT_ROUNDS           bcrypt cost                                  12
FM_PASSWORD_MIN_LENGTH     shortest password accepted                   10
FM_LOGIN_MAX_FAILURES      free tries per account and client            5
FM_LOGIN_LOCKOUT           longest backoff between tries, seconds       900
FM_AUTH_SIGNUP             1 lets anyone register (by email link)       off: admins invite
FM_KMS_KEY_ID              KMS key sealing JWT signing keys at rest     unset: FM_KEY_FILE
FM_KEY_FILE                local key sealing them otherwise             <data folder>/signing-keys.key
FM_MAIL                    ``console`` or ``smtp://user:pw@host:port``  console
                           (``?starttls=1&ssl=1&from=addr``)
FM_PUBLIC_URL              base of links in emails                      http://127.0.0.1:8000
=========================  ===========================================  =================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from flowmason.kernel.errors import ConfigError
from flowmason.kernel.settings import Settings, get_settings

ALGORITHMS = ("EdDSA", "ES256", "RS256", "HS256")


@dataclass
class AuthSettings:
    enabled: bool = False
    store_url: str | None = None
    algorithm: str = "EdDSA"
    issuer: str = "flowmason"
    audience: str = "flowmason-api"
    access_ttl: int = 3600
    refresh_ttl: int = 30 * 24 * 3600
    bcrypt_rounds: int = 12
    password_min_length: int = 10
    login_max_failures: int = 5
    login_lockout: int = 900
    kms_key_id: str | None = None  # KMS key sealing the signing keys; unset: the key file
    key_file: str | None = None  # local key sealing them (default: signing-keys.key in the data folder)
    signup: bool = False  # anyone may register (by email link); off: admins invite or run `fm auth create-user`
    reset_ttl: int = 24 * 3600
    mail: str = "console"
    public_url: str = "http://127.0.0.1:8000"
    leeway: int = 30  # seconds of clock skew tolerated on exp/nbf/iat
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(
                f"unsupported JWT algorithm {self.algorithm!r}",
                field="FM_JWT_ALGORITHM",
                hint=f"use one of {', '.join(ALGORITHMS)}",
            )
        if not 4 <= self.bcrypt_rounds <= 31:
            raise ConfigError(f"bcrypt rounds {self.bcrypt_rounds} out of range", field="FM_BCRYPT_ROUNDS",
                              hint="use 10-14 (12 is the default)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "AuthSettings":
        """From the process settings (kernel/settings.py), or from ``env`` when a test gives one."""
        s = get_settings() if env is None else Settings.from_env(env)
        return cls(
            enabled=s.auth, store_url=s.auth_store, algorithm=s.jwt_algorithm, issuer=s.jwt_issuer,
            audience=s.jwt_audience, access_ttl=s.access_ttl, refresh_ttl=s.refresh_ttl, bcrypt_rounds=s.bcrypt_rounds,
            password_min_length=s.password_min_length, login_max_failures=s.login_max_failures,
            login_lockout=s.login_lockout, signup=s.signup, kms_key_id=s.kms_key_id, key_file=s.key_file, mail=s.mail, public_url=s.public_url.rstrip("/"),
        )
