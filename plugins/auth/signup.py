"""Accounts made by email links: self-registration (when open) and invitations.

Neither reveals whether an address has an account. Registration answers
the same 202 for every address and does the work after the answer: a new
address gets a link that creates the account, an existing one a notice
("you already have an account; log in or reset"). An invitation is an
admin's: the link lets the invited address join the organization, setting
a password if it has no account yet or proving it if it has.

Tokens are random, single use (a conditional delete in the transaction
that uses them), stored as SHA-256, and expire (``reset_ttl``, 24 hours).
At most ``MAX_PER_HOUR`` mails per address an hour, so the routes cannot
flood an inbox.

Items:

    pk = "auth#signup#{sha256(token)}"  sk = "token"  -> {email, password_hash, org_name}
    pk = "auth#invite#{sha256(token)}"  sk = "token"  -> {email, org_id, role, actor_role}
    pk = "auth#signup-sent#{sha256(email)}"  sk = "n"  -> mails sent this hour
"""
from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any
from urllib.parse import quote

from flowmason.kernel.errors import ConditionFailedError
from flowmason.kernel.storage import Store

from .directory import Directory, check_role, normalise_email, outranks
from .errors import Conflict, Forbidden, InvalidCredentials
from .mail import render
from .passwords import PasswordHasher, PasswordPolicy

MAX_PER_HOUR = 5
_INVALID = "link is invalid, used or expired"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SignupService:
    def __init__(self, store: Store, directory: Directory, hasher: PasswordHasher, policy: PasswordPolicy,
                 mailer: Any, *, ttl: int, public_url: str) -> None:
        self.store, self.directory, self.hasher, self.policy = store, directory, hasher, policy
        self.mailer, self.ttl, self.public_url = mailer, ttl, public_url

    def _may_mail(self, email: str) -> bool:
        sent = self.store.increment(f"auth#signup-sent#{_digest(email)}", "n", expires_at=time.time() + 3600)
        return sent <= MAX_PER_HOUR

    def _token(self, kind: str, data: dict[str, Any]) -> str:
        token = secrets.token_urlsafe(32)
        now = time.time()
        self.store.put(f"auth#{kind}#{_digest(token)}", "token", {**data, "created_at": now}, if_absent=True,
                       expires_at=now + self.ttl)
        return token

    def _take(self, kind: str, token: Any) -> dict[str, Any]:
        """The token's data, consumed: a second use (or a parallel one) finds nothing."""
        if not isinstance(token, str) or not 20 <= len(token) <= 200:
            raise InvalidCredentials(_INVALID, hint="ask for a new one")
        pk = f"auth#{kind}#{_digest(token)}"
        item = self.store.get(pk, "token")
        if item is None or item.expires_at is None or item.expires_at <= time.time():
            raise InvalidCredentials(_INVALID, hint="ask for a new one")
        try:
            if not self.store.delete(pk, "token", if_version=item.version):
                raise ConditionFailedError("gone")
        except ConditionFailedError:
            raise InvalidCredentials(_INVALID, hint="ask for a new one") from None
        return item.data

    # -- self-registration --
    def request(self, email: str, password: str, org_name: str | None) -> str | None:
        """Mail the address a link (new) or a notice (existing); returns the token when one was made."""
        email = normalise_email(email)
        if not self._may_mail(email):
            return None
        hours = self.ttl // 3600
        # hashed for taken addresses too: whatever follows this on the connection waits the same either way
        password_hash = self.hasher.hash(password)
        if self.directory.user_id_for(email) is not None:
            text, body = render("signup_exists", email=email, link=f"{self.public_url}/reset-password")
            self.mailer.send(email, "Your FlowMason account", text, body)
            return None
        token = self._token("signup", {"email": email, "password_hash": password_hash,
                                       "org_name": org_name})
        link = f"{self.public_url}/register/confirm?token={quote(token)}"
        text, body = render("signup_confirm", email=email, link=link, hours=hours)
        self.mailer.send(email, "Finish creating your FlowMason account", text, body)
        return token

    def confirm(self, token: Any) -> dict[str, Any]:
        """Create the account the link was made for: {user_id, org_id, email}."""
        data = self._take("signup", token)
        email = data["email"]
        uid = self.directory.create_user(email, data["password_hash"])
        org = self.directory.create_org(data.get("org_name") or f"{email.split('@')[0]}'s organization", uid)
        return {"user_id": uid, "org_id": org, "email": email}

    # -- invitations --
    def invite(self, org_id: str, actor_role: str, inviter: str, email: Any, role: str) -> str | None:
        """Mail ``email`` a link to join ``org_id`` as ``role``; the role rules are checked now and on accept."""
        email = normalise_email(email)
        role = check_role(role)
        if not outranks(actor_role, "admin"):
            raise Forbidden("only admins and owners invite members")
        if role == "owner" and actor_role != "owner":
            raise Forbidden("only an owner can invite an owner")
        if not self._may_mail(email):
            return None
        token = self._token("invite", {"email": email, "org_id": org_id, "role": role, "actor_role": actor_role})
        org = (self.directory.org(org_id) or {}).get("name") or org_id
        link = f"{self.public_url}/invites/accept?token={quote(token)}"
        text, body = render("invite", email=email, inviter=inviter, org=org, role=role, link=link,
                            hours=self.ttl // 3600)
        self.mailer.send(email, f"You are invited to {org} on FlowMason", text, body)
        return token

    def accept(self, token: Any, password: Any) -> tuple[str, str]:
        """Join the invited organization: (user id, org id). A new address sets ``password``; a known one proves it."""
        data = self._take("invite", token)
        email = data["email"]
        uid = self.directory.user_id_for(email)
        if uid is None:
            self.policy.check(password, email=email)
            try:
                uid = self.directory.create_user(email, self.hasher.hash(password))
            except Conflict:
                raise InvalidCredentials(_INVALID, hint="the address got an account meanwhile: ask for a new one") from None
        else:  # the link was used up by this try: one guess per invitation
            profile = self.directory.profile(uid) or {}
            ok, _ = self.hasher.verify(password if isinstance(password, str) else "", profile.get("password_hash") or "")
            if not ok:
                raise InvalidCredentials("this address has an account: give its password to accept",
                                         hint="or reset the password first, then open the link again")
        if self.directory.role(data["org_id"], uid) is None:
            self.directory.set_member(data["org_id"], data["actor_role"], uid, data["role"])
        return uid, data["org_id"]
