"""Signing keys encrypted at rest: AWS KMS on AWS, a local key file otherwise.

Whoever can read the store (a table export, a backup, a stolen SQLite file)
must not be able to forge tokens, so ``KeyRing`` stores each key's material
sealed, never in clear:

- ``KmsSealer`` (``FM_KMS_KEY_ID``): KMS ``Encrypt``/``Decrypt`` with the
  encryption context ``{"purpose": "flowmason-jwt-signing-key", "kid": ...}``,
  so a sealed blob opens only as the key it was made for. boto3 finds the
  region and credentials as usual (``AWS_ENDPOINT_URL_KMS`` for a local
  endpoint such as moto's server).
- ``FileSealer`` (``FM_KEY_FILE``, default ``signing-keys.key`` in the data
  folder, created with mode 0600 on first use): AES-256-GCM with the kid as
  associated data. Every server sharing the store needs the same file.

A sealed record is ``{"by": "kms"|"file", "key": <KMS key id | file key
fingerprint>, "blob": <base64>}``; it names its sealer, so keys sealed one
way still open after the deployment switches to the other (and get sealed
anew), and records that predate sealing (clear ``material``) are read and
migrated (see ``KeyRing``).
"""
from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

from flowmason.kernel.errors import ConfigError

PURPOSE = "flowmason-jwt-signing-key"


class SealError(ConfigError):
    """A sealed key that this deployment cannot open (wrong key file, no KMS access)."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class FileSealer:
    by = "file"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._key: bytes | None = None

    def _load(self) -> bytes:
        if self._key is None:
            from flowmason.kernel.errors import require_extra

            require_extra(("cryptography",), "auth", "sealing signing keys with a key file")
            if not self.path.exists():
                self._create()
            raw = base64.b64decode(self.path.read_text("ascii").strip())
            if len(raw) != 32:
                raise SealError(f"{self.path} does not hold a 32-byte key (base64)", field="FM_KEY_FILE",
                                hint="restore the file that sealed the keys, or point FM_KEY_FILE at it")
            self._key = raw
        return self._key

    def _create(self) -> None:
        try:
            if not self.path.parent.is_dir():
                self.path.parent.mkdir(parents=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if self.path.is_file():
                return  # another process made it first: use theirs
            raise SealError(f"cannot create the key file {self.path}: a parent is not a folder", field="FM_KEY_FILE",
                            hint="set FM_KEY_FILE to a writable path, or FM_KMS_KEY_ID on AWS") from None
        except OSError as exc:
            raise SealError(f"cannot create the key file {self.path}: {exc.strerror}", field="FM_KEY_FILE",
                            hint="set FM_KEY_FILE to a writable path, or FM_KMS_KEY_ID on AWS") from None
        with os.fdopen(fd, "w") as fh:
            fh.write(_b64(secrets.token_bytes(32)) + "\n")

    def fingerprint(self) -> str:
        return hashlib.sha256(self._load()).hexdigest()[:16]

    def seal(self, plaintext: bytes, kid: str) -> dict[str, Any]:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = secrets.token_bytes(12)
        blob = nonce + AESGCM(self._load()).encrypt(nonce, plaintext, kid.encode("utf-8"))
        return {"by": self.by, "key": self.fingerprint(), "blob": _b64(blob)}

    def open(self, sealed: dict[str, Any], kid: str) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if sealed.get("key") != self.fingerprint():
            raise SealError(f"signing key {kid} was sealed with another key file than {self.path}",
                            field="FM_KEY_FILE", hint="give every server sharing the store the same FM_KEY_FILE")
        blob = base64.b64decode(sealed["blob"])
        try:
            return AESGCM(self._load()).decrypt(blob[:12], blob[12:], kid.encode("utf-8"))
        except InvalidTag:
            raise SealError(f"signing key {kid} does not open with {self.path}", field="FM_KEY_FILE",
                            hint="the record was altered, or sealed for another key id") from None


class KmsSealer:
    by = "kms"

    def __init__(self, key_id: str, client: Any = None) -> None:
        self.key_id = key_id
        self._client = client

    def client(self) -> Any:
        if self._client is None:
            from flowmason.kernel.errors import require_extra

            require_extra(("boto3",), "aws", "sealing signing keys with KMS (FM_KMS_KEY_ID)")
            import boto3

            self._client = boto3.client("kms")
        return self._client

    def seal(self, plaintext: bytes, kid: str) -> dict[str, Any]:
        answer = self._call("Encrypt", kid, KeyId=self.key_id, Plaintext=plaintext)
        return {"by": self.by, "key": answer.get("KeyId") or self.key_id, "blob": _b64(answer["CiphertextBlob"])}

    def open(self, sealed: dict[str, Any], kid: str) -> bytes:
        answer = self._call("Decrypt", kid, KeyId=sealed.get("key") or self.key_id,
                            CiphertextBlob=base64.b64decode(sealed["blob"]))
        return answer["Plaintext"]

    def _call(self, operation: str, kid: str, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        method = {"Encrypt": "encrypt", "Decrypt": "decrypt"}[operation]
        try:
            return getattr(self.client(), method)(EncryptionContext={"purpose": PURPOSE, "kid": kid}, **params)
        except (ClientError, BotoCoreError) as exc:
            raise SealError(f"KMS {operation} of signing key {kid} failed: {exc}", field="FM_KMS_KEY_ID",
                            hint="check the key id and that this role may kms:Encrypt and kms:Decrypt with it"
                            ) from None


class Sealers:
    """The sealer new keys get (KMS when configured, else the key file), and the ones that open old records."""

    def __init__(self, *, kms_key_id: str | None = None, key_file: str | os.PathLike[str] | None = None,
                 kms_client: Any = None) -> None:
        self.file = FileSealer(key_file or _default_key_file())
        self.kms = KmsSealer(kms_key_id, kms_client) if kms_key_id else None
        self.current: FileSealer | KmsSealer = self.kms or self.file

    def seal(self, plaintext: bytes, kid: str) -> dict[str, Any]:
        return self.current.seal(plaintext, kid)

    def open(self, sealed: dict[str, Any], kid: str) -> bytes:
        if sealed.get("by") == "kms":
            kms = self.kms or KmsSealer(str(sealed.get("key")), None)  # switched to a key file: KMS still opens it
            return kms.open(sealed, kid)
        if sealed.get("by") == "file":
            return self.file.open(sealed, kid)
        raise SealError(f"signing key {kid} is sealed in an unknown way ({sealed.get('by')!r})")

    def is_current(self, sealed: dict[str, Any]) -> bool:
        """True when ``sealed`` was made by the sealer new keys get (else it is sealed anew)."""
        if sealed.get("by") != self.current.by:
            return False
        if isinstance(self.current, FileSealer):
            return sealed.get("key") == self.current.fingerprint()
        return True


def _default_key_file() -> Path:
    from flowmason.kernel.storage import data_dir

    return data_dir() / "signing-keys.key"
