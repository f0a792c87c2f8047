"""Password hashing, verification, upgrade and policy.

New hashes are always bcrypt at the configured cost (12 by default).
``verify`` also accepts the SHA-256 hashes that older installs exported, so
those users can still log in; on success it returns a bcrypt hash to store
instead (the caller writes it), and the same happens when a bcrypt hash was
made at another cost. No SHA-256 hash is ever written.

Legacy formats accepted (read-only):

- ``sha256$<salt>$<hex>``  hex = sha256(salt + password)
- ``<64 hex chars>``       hex = sha256(password), unsalted

bcrypt reads at most 72 bytes; the policy refuses longer passwords rather
than silently ignoring the tail. Every ``verify`` spends one bcrypt check at
the configured cost, whatever the path (a password over 72 bytes, a legacy
hash, a malformed one, an unknown account through ``dummy_verify``), so the
answer's timing tells nothing about which path ran.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from .errors import PolicyError

BCRYPT_MAX_BYTES = 72
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
# a short list of the passwords attackers try first; length rules catch the rest
_COMMON = frozenset(
    """password password1 password123 passw0rd 123456789 1234567890 12345678910 qwertyuiop
    qwerty123 iloveyou1 letmein123 welcome123 administrator admin12345 changeme123
    football123 baseball123 sunshine123 princess123 trustno1234 abc1234567 1q2w3e4r5t
    aaaaaaaaaa 0123456789 9876543210 flowmason flowmason1 flowmason123""".split()
)


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 10

    def check(self, password: str, *, email: str | None = None) -> None:
        """Raise PolicyError naming the rule a password breaks."""
        if not isinstance(password, str):
            raise PolicyError("password must be a string", field="password")
        if len(password) < self.min_length:
            raise PolicyError(f"password is shorter than {self.min_length} characters", field="password",
                              hint=f"use at least {self.min_length} characters; a passphrase is easiest")
        if len(password.encode("utf-8")) > BCRYPT_MAX_BYTES:
            raise PolicyError(f"password is longer than {BCRYPT_MAX_BYTES} bytes", field="password",
                              hint=f"use at most {BCRYPT_MAX_BYTES} bytes (UTF-8)")
        if not password.strip() or len(set(password)) < 3:
            raise PolicyError("password has too few distinct characters", field="password",
                              hint="mix at least three different characters")
        if password.lower() in _COMMON:
            raise PolicyError("password is on the list of common passwords", field="password",
                              hint="choose something less guessable")
        if email:
            local = email.split("@", 1)[0].lower()
            if len(local) >= 4 and local in password.lower():
                raise PolicyError("password contains the email address", field="password",
                                  hint="do not reuse your email in your password")


class PasswordHasher:
    """bcrypt at ``rounds``, with legacy SHA-256 verification and upgrade."""

    def __init__(self, rounds: int = 12) -> None:
        self.rounds = rounds

    def hash(self, password: str) -> str:
        import bcrypt

        return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=self.rounds)).decode("ascii")

    @staticmethod
    def cost(stored: str) -> int | None:
        """The cost of a bcrypt hash (``$2b$12$...``), None for other formats."""
        parts = stored.split("$")
        if len(parts) >= 4 and parts[1] in ("2a", "2b", "2y") and parts[2].isdigit():
            return int(parts[2])
        return None

    def verify(self, password: str, stored: str) -> tuple[bool, str | None]:
        """(matches, new hash to store or None). Never raises on a malformed stored hash."""
        import bcrypt

        raw = password.encode("utf-8")
        if self.cost(stored) is not None:
            if len(raw) > BCRYPT_MAX_BYTES:
                # bcrypt would read only the first 72 bytes: never a match, but it costs the same
                self._spend(raw)
                return False, None
            try:
                ok = bcrypt.checkpw(raw, stored.encode("ascii"))
            except ValueError:
                self._spend(raw)
                return False, None
            if ok and self.cost(stored) != self.rounds:
                return True, self.hash(password)
            return ok, None
        self._spend(raw)  # legacy and malformed hashes are fast to check: pay the bcrypt time anyway
        ok = self._verify_legacy(raw, stored)
        if ok and len(raw) <= BCRYPT_MAX_BYTES:
            return True, self.hash(password)
        return ok, None

    @staticmethod
    def _verify_legacy(raw: bytes, stored: str) -> bool:
        if stored.startswith("sha256$"):
            parts = stored.split("$")
            if len(parts) != 3:
                return False
            digest = hashlib.sha256(parts[1].encode("utf-8") + raw).hexdigest()
            return hmac.compare_digest(digest, parts[2].lower())
        if _HEX64.match(stored):
            return hmac.compare_digest(hashlib.sha256(raw).hexdigest(), stored.lower())
        return False

    def dummy_verify(self, password: str) -> None:
        """Spend the time a real check would, so unknown emails cannot be told apart by timing."""
        self._spend(password.encode("utf-8"))

    def _spend(self, raw: bytes) -> None:
        """One bcrypt check at the configured cost against a hash nobody's password matches."""
        import bcrypt

        bcrypt.checkpw(raw[:BCRYPT_MAX_BYTES], self._dummy().encode("ascii"))

    _dummy_hash: str | None = None

    def _dummy(self) -> str:
        if self._dummy_hash is None or self.cost(self._dummy_hash) != self.rounds:
            self._dummy_hash = self.hash("not-a-real-password")
        return self._dummy_hash
