"""Password reset tokens: random, single use, stored as SHA-256, 24 hours, newest only.

``request(email)`` answers the same (nothing) whether or not the address
has an account, so the endpoint cannot be used to find accounts; only an
existing account gets an email. A new request deletes the previous token
in the same transaction that writes the new one, so at most one link per
user works. ``confirm`` consumes the token with a conditional delete inside
the transaction that writes the new password: two uses of one link cannot
both succeed. A successful reset ends every session of the user.

Items:

    pk = "auth#reset#{sha256(token)}"  sk = "token"  -> {user_id}, expires in 24 h
    pk = "auth#user#{uid}"             sk = "reset"  -> {hash} (the live token)
"""
from __future__ import annotations

import hashlib
import secrets
import time
from urllib.parse import quote

from flowmason.kernel.errors import TransactionError
from flowmason.kernel.storage import Op, Store

from .directory import Directory, normalise_email
from .errors import InvalidCredentials
from .mail import render
from .passwords import PasswordHasher, PasswordPolicy


MAX_PER_HOUR = 5


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ResetService:
    def __init__(self, store: Store, directory: Directory, hasher: PasswordHasher, policy: PasswordPolicy,
                 mailer, *, ttl: int, public_url: str) -> None:
        self.store, self.directory, self.hasher, self.policy = store, directory, hasher, policy
        self.mailer, self.ttl, self.public_url = mailer, ttl, public_url

    def request(self, email: str) -> str | None:
        """Issue a token and mail it; returns the token for callers that deliver it themselves (tests, CLI)."""
        email = normalise_email(email)
        uid = self.directory.user_id_for(email)
        if uid is None:
            return None
        # at most MAX_PER_HOUR emails per account an hour, so the endpoint cannot flood someone's inbox
        sent = self.store.increment(f"auth#reset-sent#{uid}", "n", expires_at=time.time() + 3600)
        if sent > MAX_PER_HOUR:
            return None
        token = secrets.token_urlsafe(32)
        digest = _digest(token)
        now = time.time()
        ops = [
            Op("put", f"auth#reset#{digest}", "token", {"user_id": uid, "created_at": now},
               if_absent=True, expires_at=now + self.ttl),
            Op("put", f"auth#user#{uid}", "reset", {"hash": digest}, expires_at=now + self.ttl),
        ]
        previous = self.store.get(f"auth#user#{uid}", "reset")
        if previous is not None:
            ops.append(Op("delete", f"auth#reset#{previous.data['hash']}", "token"))
        self.store.transact(ops)
        link = f"{self.public_url}/reset-password?token={quote(token)}"
        text, html_body = render("password_reset", email=email, link=link, hours=self.ttl // 3600)
        self.mailer.send(email, "Reset your FlowMason password", text, html_body)
        return token

    def confirm(self, token: str, new_password: str) -> str:
        """Set the new password; returns the user id. Refuses used, replaced and expired tokens alike."""
        if not isinstance(token, str) or not 20 <= len(token) <= 200:
            raise InvalidCredentials("reset link is invalid or expired", hint="ask for a new one")
        digest = _digest(token)
        item = self.store.get(f"auth#reset#{digest}", "token")
        if item is None or item.expires_at is None or item.expires_at <= time.time():
            raise InvalidCredentials("reset link is invalid or expired", hint="ask for a new one")
        uid = item.data["user_id"]
        profile = self.directory.profile(uid)
        if profile is None:
            raise InvalidCredentials("reset link is invalid or expired", hint="ask for a new one")
        self.policy.check(new_password, email=profile["email"])
        pointer = self.store.get(f"auth#user#{uid}", "reset")
        new_profile = {k: v for k, v in profile.items() if k != "version"}
        new_profile["password_hash"] = self.hasher.hash(new_password)
        ops = [
            Op("delete", f"auth#reset#{digest}", "token", if_version=item.version),
            Op("put", f"auth#user#{uid}", "profile", new_profile, if_version=profile["version"]),
        ]
        if pointer is not None and pointer.data.get("hash") == digest:
            ops.append(Op("delete", f"auth#user#{uid}", "reset", if_version=pointer.version))
        try:
            self.store.transact(ops)
        except TransactionError:
            raise InvalidCredentials("reset link is invalid or expired", hint="ask for a new one") from None
        return uid
