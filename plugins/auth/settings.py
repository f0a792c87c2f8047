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
FM_LOGIN_MAX_FAILURES      failures before lockout                      5
FM_LOGIN_LOCKOUT           lockout window, seconds                      900
FM_MAIL                    ``console`` or ``smtp://user:pw@host:port``  console
                           (``?starttls=1&ssl=1&from=addr``)
FM_PUBLIC_URL              base of links in emails                      http://127.0.0.1:8000
=========================  ===========================================  =================
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from flowmason.kernel.errors import ConfigError

ALGORITHMS = ("EdDSA", "ES256", "RS256", "HS256")


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _int(env: dict, name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number", field=name, hint=f"e.g. {name}={default}") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below {minimum}", field=name, hint=f"e.g. {name}={default}")
    return value


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
    def from_env(cls, env: dict | None = None) -> "AuthSettings":
        env = dict(os.environ if env is None else env)
        return cls(
            enabled=_flag(env.get("FM_AUTH")),
            store_url=env.get("FM_AUTH_STORE") or None,
            algorithm=env.get("FM_JWT_ALGORITHM") or "EdDSA",
            issuer=env.get("FM_JWT_ISSUER") or "flowmason",
            audience=env.get("FM_JWT_AUDIENCE") or "flowmason-api",
            access_ttl=_int(env, "FM_ACCESS_TTL", 3600, 1),
            refresh_ttl=_int(env, "FM_REFRESH_TTL", 30 * 24 * 3600, 1),
            bcrypt_rounds=_int(env, "FM_BCRYPT_ROUNDS", 12, 4),
            password_min_length=_int(env, "FM_PASSWORD_MIN_LENGTH", 10, 1),
            login_max_failures=_int(env, "FM_LOGIN_MAX_FAILURES", 5, 1),
            login_lockout=_int(env, "FM_LOGIN_LOCKOUT", 900, 1),
            mail=env.get("FM_MAIL") or "console",
            public_url=(env.get("FM_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/"),
        )
