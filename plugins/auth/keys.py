"""Signing keys for session tokens: key ids, rotation, one pinned algorithm.

Keys live in the store (``pk="auth#signing-keys"``, ``sk=kid``) so every API
instance (Lambda containers included) signs and verifies with the same set.
Their material is sealed (``sealing.py``: KMS, or a local key file); a
record from before sealing (clear ``material``) is read and sealed in
place on the next load, so upgrading loses no key and no session. A key
this deployment cannot open is left out with a warning naming the fix
(tokens it signed then fail to verify; nothing else does).
The newest live key signs; older keys keep verifying until the longest
token they may have signed (a refresh token) has expired, then they expire
from the store themselves (``expires_at``). ``rotate()`` adds a key and
retires the others; ``fm auth rotate-keys`` calls it.

Verification pins the algorithm: a token whose header names anything but
the configured algorithm, an unknown ``kid``, or no ``kid`` is refused
before any cryptography runs. That, plus PyJWT's own refusal to use a PEM
public key as an HMAC secret, closes the ``alg: none`` and algorithm
confusion attacks (HS256 signed with the public key).
"""
from __future__ import annotations

import base64
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from flowmason.kernel.errors import ConditionFailedError, ConfigError
from flowmason.kernel.storage import Store

log = logging.getLogger("flowmason.auth")

KEYS_PK = "auth#signing-keys"
_RELOAD_EVERY = 5.0  # seconds between reloads triggered by unknown kids (bounds the work a forger can cause)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    signing: Any  # private key object, or bytes for HS256
    verifying: Any  # public key object, or bytes for HS256
    created_at: float
    retired_at: float | None = None


def _generate(alg: str) -> tuple[str, Any]:
    """New key material as (serialized text, signing key)."""
    if alg == "HS256":
        raw = secrets.token_bytes(32)
        return base64.b64encode(raw).decode("ascii"), raw
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if alg == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
    elif alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:  # settings validated the name already
        raise ValueError(alg)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode("ascii")
    return pem, key


def _load(alg: str, material: str) -> tuple[Any, Any]:
    if alg == "HS256":
        raw = base64.b64decode(material)
        return raw, raw
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(material.encode("ascii"), password=None)
    return key, key.public_key()


class KeyRing:
    """The signing keys of one deployment, cached in memory and shared through the store."""

    def __init__(self, store: Store, algorithm: str, *, keep_for: int, sealers: Any = None) -> None:
        self.store = store
        self.algorithm = algorithm
        self._sealers = sealers
        self.keep_for = keep_for  # how long a retired key keeps verifying (the refresh lifetime)
        self._keys: dict[str, SigningKey] = {}
        self._lock = threading.Lock()
        self._loaded_at = 0.0

    def _reload(self) -> None:
        keys: dict[str, SigningKey] = {}
        cursor = None
        for _ in range(1000):  # bounded: a deployment has a handful of keys
            page = self.store.query(KEYS_PK, cursor=cursor, limit=100)
            for item in page.items:
                d = item.data
                try:
                    material = self._material(item)
                except ConfigError as exc:
                    log.warning("signing key %s left out: %s (%s)", item.sk, exc.message, exc.hint)
                    continue
                signing, verifying = _load(d["alg"], material)
                keys[item.sk] = SigningKey(item.sk, d["alg"], signing, verifying, d["created_at"], d.get("retired_at"))
            cursor = page.cursor
            if not cursor:
                break
        self._keys = keys
        self._loaded_at = time.monotonic()

    @property
    def sealers(self) -> Any:
        if self._sealers is None:
            from .sealing import Sealers

            self._sealers = Sealers()
        return self._sealers

    def _material(self, item: Any) -> str:
        """The key's material, opened; a clear or differently sealed record is sealed anew in place."""
        d = item.data
        sealed = d.get("sealed")
        material = d["material"] if sealed is None else self.sealers.open(sealed, item.sk).decode("ascii")
        if sealed is None or not self.sealers.is_current(sealed):
            data = {k: v for k, v in d.items() if k != "material"}
            data["sealed"] = self.sealers.seal(material.encode("ascii"), item.sk)
            try:
                self.store.put(KEYS_PK, item.sk, data, if_version=item.version, expires_at=item.expires_at)
            except ConditionFailedError:
                pass  # another instance sealed (or retired) it meanwhile: the next load reads theirs
        return material

    def _current(self) -> SigningKey | None:
        live = [k for k in self._keys.values() if k.retired_at is None and k.alg == self.algorithm]
        return max(live, key=lambda k: (k.created_at, k.kid)) if live else None

    def signing_key(self) -> SigningKey:
        with self._lock:
            if not self._keys:
                self._reload()
            current = self._current()
            if current is None:
                current = self._add()
            return current

    def verifying_key(self, kid: str) -> SigningKey | None:
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._loaded_at > _RELOAD_EVERY:
            with self._lock:
                self._reload()
            key = self._keys.get(kid)
        return key

    def _add(self) -> SigningKey:
        kid = secrets.token_hex(8)
        material, _ = _generate(self.algorithm)
        now = time.time()
        sealed = self.sealers.seal(material.encode("ascii"), kid)
        self.store.put(KEYS_PK, kid, {"alg": self.algorithm, "sealed": sealed, "created_at": now}, if_absent=True)
        self._reload()
        return self._keys[kid]

    def rotate(self) -> SigningKey:
        """Add a new signing key; the previous ones only verify from now on, then expire."""
        with self._lock:
            self._reload()
            now = time.time()
            for key in list(self._keys.values()):
                if key.retired_at is None:
                    item = self.store.get(KEYS_PK, key.kid)
                    if item is not None:
                        data = dict(item.data, retired_at=now)
                        self.store.put(KEYS_PK, key.kid, data, if_version=item.version,
                                       expires_at=now + self.keep_for)
            return self._add()

    def kids(self) -> list[str]:
        with self._lock:
            self._reload()
            return sorted(self._keys)
