"""API keys: scoped (read / run / admin), shown once, stored hashed, with a visible prefix.

A key reads ``fmk_<prefix>_<secret>``. The prefix (8 characters) is stored
in clear so people can tell their keys apart in listings and logs; the
whole key is stored only as its SHA-256 (the secret has 256 bits of
entropy, so a slow hash would add nothing but latency) and compared in
constant time. Scopes imply the ones below them (admin > run > read), and
a key never gets more than its owner's current role allows: the
effective scopes are recomputed from the membership on every request, so
demoting or removing a member shrinks or kills their keys at once.

Items:

    pk = "auth#apikey#{prefix}"   sk = "key"      -> {hash, org_id, user_id, name, scopes, expires_at, revoked}
    pk = "org#{org}#apikeys"      sk = "{prefix}" -> listing entry without the hash
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
from typing import Any

from flowmason.kernel.storage import Op, Store

from .directory import ROLE_SCOPES, Directory
from .errors import Forbidden, InvalidCredentials, NotFound, PolicyError

SCOPES = ("read", "run", "admin")
# "run" keys also save pipelines ("write"): a CI job deploys and runs; "admin" passes every API check
_IMPLIED = {"read": {"read"}, "run": {"read", "write", "run"}, "admin": {"read", "write", "run", "admin"}}
_ALPHABET = string.ascii_lowercase + string.digits
MAX_TTL = 5 * 365 * 24 * 3600


def expand_scopes(scopes: Any) -> set[str]:
    if not isinstance(scopes, list) or not scopes or not all(s in _IMPLIED for s in scopes):
        raise PolicyError("scopes must be a non-empty list of read, run, admin", field="scopes",
                          hint='e.g. "scopes": ["read"]')
    out: set[str] = set()
    for s in scopes:
        out |= _IMPLIED[s]
    return out


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeyService:
    def __init__(self, store: Store, directory: Directory) -> None:
        self.store = store
        self.directory = directory

    def create(self, org_id: str, user_id: str, role: str, *, name: Any, scopes: Any,
               expires_in: Any = None) -> dict[str, Any]:
        """Make a key; the returned ``key`` is the only time the secret is ever shown."""
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise PolicyError("key name must be 1-100 characters", field="name")
        wanted = expand_scopes(scopes)
        allowed = ROLE_SCOPES[role]
        if not wanted <= allowed:
            raise Forbidden(f"your role ({role}) cannot grant scope(s) {', '.join(sorted(wanted - allowed))}")
        expires_at = None
        if expires_in is not None:
            if not isinstance(expires_in, int) or isinstance(expires_in, bool) or not 60 <= expires_in <= MAX_TTL:
                raise PolicyError("expires_in must be seconds between 60 and 5 years", field="expires_in")
            expires_at = time.time() + expires_in
        prefix = "".join(secrets.choice(_ALPHABET) for _ in range(8))
        key = f"fmk_{prefix}_{secrets.token_urlsafe(32)}"
        record = {"org_id": org_id, "user_id": user_id, "name": name, "scopes": sorted(wanted),
                  "created_at": time.time(), "expires_at": expires_at, "revoked": False}
        self.store.transact([
            Op("put", f"auth#apikey#{prefix}", "key", dict(record, hash=_digest(key)), if_absent=True),
            Op("put", f"org#{org_id}#apikeys", prefix, record, if_absent=True),
        ])
        return dict(record, prefix=prefix, key=key)

    def list(self, org_id: str) -> list[dict[str, Any]]:
        page = self.store.query(f"org#{org_id}#apikeys", limit=1000)
        return [dict(i.data, prefix=i.sk) for i in page.items]

    def revoke(self, org_id: str, prefix: str, user_id: str, role: str) -> None:
        entry = self.store.get(f"org#{org_id}#apikeys", prefix)
        if entry is None:  # absent, or another organization's key: the same answer
            raise NotFound("no such API key")
        if entry.data["user_id"] != user_id and "admin" not in ROLE_SCOPES[role]:
            raise Forbidden("only the key's creator or an admin can revoke it")
        key = self.store.get(f"auth#apikey#{prefix}", "key")
        ops = [Op("put", f"org#{org_id}#apikeys", prefix, dict(entry.data, revoked=True))]
        if key is not None:
            ops.append(Op("put", f"auth#apikey#{prefix}", "key", dict(key.data, revoked=True)))
        self.store.transact(ops)

    def authenticate(self, key: str) -> dict[str, Any]:
        """The identity a key stands for, or InvalidCredentials."""
        parts = key.split("_", 2) if isinstance(key, str) else []
        if len(parts) != 3 or parts[0] != "fmk" or len(parts[1]) != 8 or not parts[1].isalnum():
            raise InvalidCredentials("malformed API key")
        item = self.store.get(f"auth#apikey#{parts[1]}", "key")
        # compare even when absent so a missing prefix costs the same as a wrong secret
        expected = item.data["hash"] if item else "0" * 64
        if not hmac.compare_digest(expected, _digest(key)) or item is None:
            raise InvalidCredentials("unknown API key")
        d = item.data
        if d.get("revoked"):
            raise InvalidCredentials("API key revoked")
        if d.get("expires_at") is not None and d["expires_at"] <= time.time():
            raise InvalidCredentials("API key expired", hint="create a new key")
        role = self.directory.role(d["org_id"], d["user_id"])
        if role is None:
            raise InvalidCredentials("the key's owner is no longer a member")
        scopes = set(d["scopes"]) & ROLE_SCOPES[role]
        return {"subject": d["user_id"], "org_id": d["org_id"], "roles": [role], "scopes": sorted(scopes),
                "kind": "api_key", "key_prefix": parts[1]}
