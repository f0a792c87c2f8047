"""Users, organizations and memberships on the storage contract.

Item layout:

    pk = "auth#email#{email}"      sk = "user"          -> {user_id}          (unique email index)
    pk = "auth#user#{uid}"         sk = "profile"       -> {email, password_hash, created_at}
    pk = "auth#user#{uid}"         sk = "org#{org}"     -> {role}             (my organizations)
    pk = "auth#org#{org}"          sk = "meta"          -> {name, created_at}
    pk = "auth#org#{org}"          sk = "member#{uid}"  -> {role, email}

Roles decide what a member may do through scopes: ``viewer`` reads,
``member`` also saves pipelines and runs them, ``admin`` also administers (API keys, members),
``owner`` also manages owners. An organization always keeps one owner.
Every membership change writes both sides in one transaction.
"""
from __future__ import annotations

import re

import secrets
import time
from typing import Any

from flowmason.kernel.errors import ConditionFailedError, TransactionError
from flowmason.kernel.storage import Op, Store

from .errors import Conflict, Forbidden, NotFound, PolicyError

ROLES = ("owner", "admin", "member", "viewer")
# "write" (saving pipelines) and "run" are the HTTP API's scopes; "admin" passes every check there
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "owner": frozenset({"read", "write", "run", "admin", "owner"}),
    "admin": frozenset({"read", "write", "run", "admin"}),
    "member": frozenset({"read", "write", "run"}),
    "viewer": frozenset({"read"}),
}
_RANK = {role: i for i, role in enumerate(reversed(ROLES))}  # viewer 0 ... owner 3


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


# what the server takes as an address; the OpenAPI schemas carry the same pattern
EMAIL_PATTERN = r"^\s*[^@\s]+@[^@\s]+\s*$"


def normalise_email(email: Any) -> str:
    if not isinstance(email, str) or len(email) > 254 or not re.match(EMAIL_PATTERN, email):
        raise PolicyError("a valid email address is required", field="email", hint="write name@example.com")
    return email.strip().lower()


def check_role(role: Any) -> str:
    if role not in ROLE_SCOPES:
        raise PolicyError(f"unknown role {role!r}", field="role", hint=f"use one of {', '.join(ROLES)}")
    return role


def outranks(a: str, b: str) -> bool:
    """True when role ``a`` is at least role ``b``."""
    return _RANK[a] >= _RANK[b]


class Directory:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- users --
    def create_user(self, email: str, password_hash: str | None) -> str:
        email = normalise_email(email)
        uid = new_id("usr")
        now = time.time()
        try:
            self.store.transact([
                Op("put", f"auth#email#{email}", "user", {"user_id": uid}, if_absent=True),
                Op("put", f"auth#user#{uid}", "profile",
                   {"email": email, "password_hash": password_hash, "created_at": now}, if_absent=True),
            ])
        except TransactionError:
            raise Conflict("an account with this email already exists", field="email",
                           hint="log in, or reset the password") from None
        return uid

    def user_id_for(self, email: str) -> str | None:
        item = self.store.get(f"auth#email#{normalise_email(email)}", "user")
        return item.data["user_id"] if item else None

    def profile(self, uid: str) -> dict | None:
        item = self.store.get(f"auth#user#{uid}", "profile")
        return dict(item.data, version=item.version) if item else None

    def set_password_hash(self, uid: str, password_hash: str, *, if_version: int | None = None) -> None:
        item = self.store.get(f"auth#user#{uid}", "profile")
        if item is None:
            raise NotFound("no such user")
        try:
            self.store.put(f"auth#user#{uid}", "profile", dict(item.data, password_hash=password_hash),
                           if_version=if_version or item.version)
        except ConditionFailedError:
            pass  # another login upgraded the hash concurrently; theirs is as good as ours

    # -- organizations --
    def create_org(self, name: Any, owner_uid: str) -> str:
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise PolicyError("organization name must be 1-200 characters", field="name")
        org = new_id("org")
        profile = self.profile(owner_uid) or {}
        self.store.transact([
            Op("put", f"auth#org#{org}", "meta", {"name": name.strip(), "created_at": time.time()}, if_absent=True),
            Op("put", f"auth#org#{org}", f"member#{owner_uid}", {"role": "owner", "email": profile.get("email")}),
            Op("put", f"auth#user#{owner_uid}", f"org#{org}", {"role": "owner"}),
        ])
        return org

    def org(self, org: str) -> dict | None:
        item = self.store.get(f"auth#org#{org}", "meta")
        return dict(item.data, org_id=org) if item else None

    def role(self, org: str, uid: str) -> str | None:
        item = self.store.get(f"auth#org#{org}", f"member#{uid}")
        return item.data["role"] if item else None

    def orgs_of(self, uid: str) -> list[dict]:
        page = self.store.query(f"auth#user#{uid}", prefix="org#", limit=1000)
        out = []
        for item in page.items:
            org = item.sk[len("org#"):]
            meta = self.org(org) or {}
            out.append({"org_id": org, "name": meta.get("name"), "role": item.data["role"]})
        return out

    def members(self, org: str) -> list[dict]:
        page = self.store.query(f"auth#org#{org}", prefix="member#", limit=1000)
        return [{"user_id": i.sk[len("member#"):], "email": i.data.get("email"), "role": i.data["role"]}
                for i in page.items]

    def _owners(self, org: str) -> int:
        return sum(1 for m in self.members(org) if m["role"] == "owner")

    def set_member(self, org: str, actor_role: str, uid: str, role: str) -> None:
        """Add a member or change a role, as someone holding ``actor_role`` in ``org``."""
        role = check_role(role)
        current = self.role(org, uid)
        if not outranks(actor_role, "admin"):
            raise Forbidden("only admins and owners manage members")
        # admins manage members and viewers; touching owners (or making one) takes an owner
        if (role == "owner" or current == "owner") and actor_role != "owner":
            raise Forbidden("only an owner can grant or change the owner role")
        if current == "owner" and role != "owner" and self._owners(org) <= 1:
            raise Conflict("an organization needs at least one owner", hint="make someone else owner first")
        profile = self.profile(uid)
        if profile is None:
            raise NotFound("no such user")
        self.store.transact([
            Op("put", f"auth#org#{org}", f"member#{uid}", {"role": role, "email": profile.get("email")}),
            Op("put", f"auth#user#{uid}", f"org#{org}", {"role": role}),
        ])

    def remove_member(self, org: str, actor_role: str, uid: str) -> None:
        current = self.role(org, uid)
        if current is None:
            raise NotFound("no such member")
        if not outranks(actor_role, "admin"):
            raise Forbidden("only admins and owners manage members")
        if current == "owner" and actor_role != "owner":
            raise Forbidden("only an owner can remove an owner")
        if current == "owner" and self._owners(org) <= 1:
            raise Conflict("an organization needs at least one owner", hint="make someone else owner first")
        self.store.transact([
            Op("delete", f"auth#org#{org}", f"member#{uid}"),
            Op("delete", f"auth#user#{uid}", f"org#{org}"),
        ])
