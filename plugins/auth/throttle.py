"""Login throttling per account and client: a few free tries, then each further try waits twice as long.

The key is the pair (account email, client address), so wrong passwords sent
from one client slow down that client only: nobody can lock the owner out
of an account from elsewhere. (Guessing from many addresses is bounded by
the per-IP rate limiter and by each address's own backoff.)

``FM_LOGIN_MAX_FAILURES`` tries are free within ``FM_LOGIN_LOCKOUT``
seconds. The last free try that fails opens the first slot one second
later; each slot a client takes (its try is checked) pushes the next one
twice as far, up to ``FM_LOGIN_LOCKOUT`` seconds. The slots are forgotten
only after ``FM_LOGIN_LOCKOUT`` seconds without a try. Free tries are counted by
an atomic increment made before the password is checked, and a slot is
taken by a conditional write, so 1,000 parallel guesses still get exactly
the allowed number of checks. A success clears that client's state; a
password reset clears every client's.
"""
from __future__ import annotations

import hashlib
import math
import time

from flowmason.kernel.errors import ConditionFailedError
from flowmason.kernel.storage import Store

from .errors import LockedOut


def _digest(text: str) -> str:
    # hashed so the store keeps no list of addresses and clients that tried
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class LoginThrottle:
    def __init__(self, store: Store, *, free_tries: int, max_wait: int) -> None:
        self.store = store
        self.free_tries = free_tries
        self.max_wait = max_wait

    def _pk(self, email: str) -> str:
        return "auth#login-failures#" + _digest(email)

    def admit(self, email: str, client: str) -> None:
        """Raise LockedOut unless this try may check a password now."""
        pk, who = self._pk(email), _digest(client or "unknown")
        now = time.time()
        tries = self.store.increment(pk, f"{who}#n", expires_at=now + self.max_wait)
        slot = self.store.get(pk, f"{who}#slot")
        if slot is None and tries <= self.free_tries:
            return  # a live slot outlasts the free tries' window: waiting never buys new free tries
        if slot is None:
            # the last free try is still being checked (or the slot expired first): the first slot opens soon
            self._open_first_slot(pk, who, now)
            raise self._locked(1)
        if slot.data["at"] > now:
            raise self._locked(slot.data["at"] - now)
        step = int(slot.data.get("step", 0)) + 1
        wait = min(self.max_wait, 2 ** step)
        try:
            self.store.put(pk, f"{who}#slot", {"at": now + wait, "step": step}, if_version=slot.version,
                           expires_at=now + wait + self.max_wait)
        except ConditionFailedError:
            raise self._locked(1) from None  # a parallel try took this slot

    def failed(self, email: str, client: str) -> None:
        """After a wrong password: the last free try opens the first slot, one second on."""
        pk, who = self._pk(email), _digest(client or "unknown")
        counter = self.store.get(pk, f"{who}#n")
        if counter is not None and int(counter.data.get("n", 0)) >= self.free_tries:
            self._open_first_slot(pk, who, time.time())

    def _open_first_slot(self, pk: str, who: str, now: float) -> None:
        try:
            self.store.put(pk, f"{who}#slot", {"at": now + 1, "step": 0}, if_absent=True,
                           expires_at=now + 1 + self.max_wait)
        except ConditionFailedError:
            pass  # a slot exists already: its own wait stands

    def clear(self, email: str, client: str | None = None) -> None:
        """Forget one client's tries for this account (a success), or every client's (a password reset)."""
        pk = self._pk(email)
        if client is not None:
            who = _digest(client or "unknown")
            for sk in (f"{who}#n", f"{who}#slot"):
                self.store.delete(pk, sk)
            return
        for item in list(self.store.query_all(pk)):
            self.store.delete(pk, item.sk)

    def _locked(self, seconds: float) -> LockedOut:
        return LockedOut("too many failed logins from this client; try again later",
                         retry_after=max(1, math.ceil(seconds)),
                         hint="wait for Retry-After seconds (each failure doubles the wait), or reset your password")
