"""Helpers every storage backend shares, so they agree byte for byte.

- ``dumps``/``loads``: the JSON form of an item's data. Bytes travel as
  ``{"__bytes__": "<base64>"}``; SQLite stores this text, ``fm store
  export`` prints it, ``fm store import`` reads it back.
- ``check_item``: the one size rule (``MAX_ITEM_BYTES`` of UTF-8 over pk, sk
  and the JSON data) and the key rules (non-empty strings, DynamoDB's key
  length limits) applied by every backend, so an item that fits on a laptop
  also fits on Lambda.
- ``key_bounds``: a prefix and/or a ``start``/``end`` range turned into one
  half-open interval of sort keys.
- ``check_blob_key``: the key rule of every ``BlobStore`` (S3's 1024 bytes).
- ``encode_cursor``/``decode_cursor``: the opaque page cursor (the last sort
  key returned, base64url), identical across backends.

Kept apart from ``storage.py`` (the contract) because only backends and the
store commands need it; it imports nothing beyond the standard library.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from .errors import ConditionFailedError, ItemTooLargeError, StorageError, TransactionError
from .storage import MAX_ITEM_BYTES, Op

_BYTES_KEY = "__bytes__"
_BYTES_MARK = '"__bytes__"'

# DynamoDB's limits on key attributes (bytes of UTF-8); applied everywhere.
MAX_PK_BYTES = 2048
MAX_SK_BYTES = 1024
MAX_TRANSACT_OPS = 100  # DynamoDB's TransactWriteItems limit
MAX_BLOB_KEY_BYTES = 1024  # S3's key limit, kept by every blob store so keys that work locally work on AWS

# allow_nan=False: DynamoDB cannot hold NaN/inf, so no backend accepts them.
_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), default=lambda o: _default(o), check_circular=False, allow_nan=False
).encode


class UnstorableValueError(StorageError, TypeError):
    """A value JSON (and DynamoDB) cannot hold. Also a TypeError, so callers that
    already fall back to a JSON-safe copy on TypeError (the run recorder) keep working."""


def _default(obj: Any) -> Any:
    # Called by the C encoder only for values JSON cannot express, so plain
    # dicts pay nothing for bytes support.
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {_BYTES_KEY: base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(
        f"value of type {type(obj).__name__} cannot be stored; use str, int, float, bool, None, list, dict or bytes"
    )


def dumps(data: Any) -> str:
    """Compact JSON text of ``data`` with bytes as ``{"__bytes__": base64}``."""
    try:
        return _encoder(data)
    except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: a cycle (check_circular is off)
        raise UnstorableValueError(f"item data is not storable: {exc}", hint="store JSON-like values and bytes only") from exc


def _revive(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _BYTES_KEY in obj:
        return base64.b64decode(obj[_BYTES_KEY])
    return obj


def loads(text: str | bytes) -> Any:
    """Inverse of ``dumps``. The object hook runs only when the text holds bytes."""
    if _BYTES_MARK in (text if isinstance(text, str) else text.decode("utf-8")):
        return json.loads(text, object_hook=_revive)
    return json.loads(text)


def revive(value: Any) -> Any:
    """Turn ``{"__bytes__": ...}`` markers in already-parsed JSON back into bytes (import)."""
    if isinstance(value, dict):
        if len(value) == 1 and _BYTES_KEY in value:
            try:
                return base64.b64decode(value[_BYTES_KEY], validate=True)
            except (binascii.Error, TypeError) as exc:
                raise ValueError(f"bad base64 in __bytes__: {exc}") from None
        return {k: revive(v) for k, v in value.items()}
    if isinstance(value, list):
        return [revive(v) for v in value]
    return value


def check_keys(pk: Any, sk: Any) -> None:
    """Raise StorageError unless pk and sk are non-empty strings within the key limits."""
    if not isinstance(pk, str) or not isinstance(sk, str) or not pk or not sk:
        raise StorageError(
            f"keys must be non-empty strings, got pk={pk!r} sk={sk!r}",
            hint="DynamoDB refuses empty key attributes, so every backend does",
        )
    # len(str) * 4 bounds the UTF-8 size: encode only keys that could be too long.
    if len(pk) * 4 > MAX_PK_BYTES and len(pk.encode("utf-8")) > MAX_PK_BYTES:
        raise StorageError(f"partition key is longer than {MAX_PK_BYTES} bytes: {pk[:60]!r}...", hint="shorten the key")
    if len(sk) * 4 > MAX_SK_BYTES and len(sk.encode("utf-8")) > MAX_SK_BYTES:
        raise StorageError(f"sort key is longer than {MAX_SK_BYTES} bytes: {sk[:60]!r}...", hint="shorten the key")


def check_blob_key(key: Any) -> str:
    """Raise StorageError unless ``key`` is a non-empty string of at most 1024 UTF-8 bytes; returns it."""
    if not isinstance(key, str) or not key:
        raise StorageError(f"a blob key must be a non-empty string, got {key!r}")
    if len(key) * 4 > MAX_BLOB_KEY_BYTES and len(key.encode("utf-8", "surrogatepass")) > MAX_BLOB_KEY_BYTES:
        raise StorageError(f"blob key is longer than {MAX_BLOB_KEY_BYTES} bytes: {key[:60]!r}...", hint="shorten the key")
    return key


def unicode_error(exc: UnicodeEncodeError) -> StorageError:
    return StorageError(
        f"a key or value is not valid Unicode ({exc.reason}: {exc.object[exc.start:exc.end]!r})",
        hint="lone surrogates cannot be stored; decode bytes with errors='replace' or store them as bytes",
    )


def check_unicode(*texts: str) -> None:
    """Raise StorageError when a text holds a lone surrogate (it cannot become UTF-8)."""
    try:
        for text in texts:
            text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise unicode_error(exc) from None


def check_expiry(expires_at: Any) -> None:
    """Raise StorageError unless ``expires_at`` is None or epoch seconds (int or float)."""
    if expires_at is not None and (type(expires_at) not in (int, float) or not math.isfinite(expires_at)):
        raise StorageError(
            f"expires_at must be epoch seconds (a number) or None, got {expires_at!r}",
            hint="pass time.time() + seconds",
        )


def check_size(pk: str, sk: str, text: str) -> None:
    """Raise ItemTooLargeError when pk + sk + JSON data exceed MAX_ITEM_BYTES of UTF-8.

    Callers may skip this when ``(len(pk) + len(sk) + len(text)) * 4 <= MAX_ITEM_BYTES``
    (a character is at most 4 bytes); it is exact otherwise.
    """
    size = len(pk.encode("utf-8")) + len(sk.encode("utf-8")) + len(text.encode("utf-8"))
    if size > MAX_ITEM_BYTES:
        raise ItemTooLargeError(
            f"item (pk={pk!r}, sk={sk!r}) is {size} bytes; the limit is {MAX_ITEM_BYTES} bytes",
            hint="keep large payloads (files, long LLM outputs) elsewhere and store a reference, or split the item",
        )


def check_item(pk: str, sk: str, data: Any) -> str:
    """Validate keys and size; return the JSON text of ``data``."""
    check_keys(pk, sk)
    if not isinstance(data, dict):
        raise StorageError(f"item data must be a dict, got {type(data).__name__} (pk={pk!r}, sk={sk!r})")
    text = dumps(data)
    if (len(pk) + len(sk) + len(text)) * 4 > MAX_ITEM_BYTES:
        check_size(pk, sk, text)
    return text


def check_restored(item: Any) -> str:
    """Validate an item written as-is (import/restore); return the JSON text of its data."""
    if type(item.version) is not int or item.version < 1:
        raise StorageError(f"item (pk={item.pk!r}, sk={item.sk!r}) has bad version {item.version!r}")
    check_expiry(item.expires_at)
    return check_item(item.pk, item.sk, item.data)


def page_bounds(prefix: str | None, start: str | None, end: str | None, limit: int) -> tuple[str | None, str | None]:
    """``key_bounds`` for a query, after checking its limit."""
    if type(limit) is not int or limit < 1:
        raise StorageError(f"query limit must be a positive integer, got {limit!r}")
    return key_bounds(prefix, start, end)


def _next_char_prefix(prefix: str) -> str | None:
    """Smallest string greater than every string starting with ``prefix`` (UTF-8/code-point order)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates cannot be stored; skip past them
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


def key_bounds(prefix: str | None, start: str | None, end: str | None) -> tuple[str | None, str | None]:
    """The half-open interval [lo, hi) of sort keys matching prefix and start/end (None = unbounded)."""
    lo, hi = start, end
    if prefix:
        if lo is None or prefix > lo:
            lo = prefix
        upper = _next_char_prefix(prefix)
        if upper is not None and (hi is None or upper < hi):
            hi = upper
    return lo, hi


def encode_cursor(sk: str) -> str:
    return base64.urlsafe_b64encode(sk.encode("utf-8")).decode("ascii")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise StorageError(
            f"invalid page cursor {cursor[:40]!r}", hint="pass back the cursor of the previous page unchanged"
        ) from exc


def validate_ops(ops: list[Op]) -> list[str | None]:
    """Check a transaction before touching the store; returns the JSON text of each put."""
    if not ops:
        return []
    if len(ops) > MAX_TRANSACT_OPS:
        raise TransactionError(
            f"a transaction holds at most {MAX_TRANSACT_OPS} operations, got {len(ops)}",
            hint="split it, or use batch_put for unconditional writes",
        )
    seen: set[tuple[str, str]] = set()
    texts: list[str | None] = []
    for index, op in enumerate(ops):
        if op.kind not in ("put", "delete", "check"):
            raise TransactionError(f"transaction op {index}: unknown kind {op.kind!r} (use put, delete or check)")
        if (op.pk, op.sk) in seen:
            raise TransactionError(
                f"transaction op {index}: (pk={op.pk!r}, sk={op.sk!r}) appears twice",
                hint="an item may appear once per transaction (a DynamoDB rule every backend follows)",
            )
        seen.add((op.pk, op.sk))
        if op.if_absent and op.if_version is not None:
            raise TransactionError(f"transaction op {index}: pass either if_absent or if_version, not both")
        if op.kind == "put":
            if op.data is None:
                raise TransactionError(f"transaction op {index}: put needs data")
            check_expiry(op.expires_at)
            texts.append(check_item(op.pk, op.sk, op.data))
        else:
            if op.kind == "check" and not (op.if_absent or op.if_exists or op.if_version is not None):
                raise TransactionError(
                    f"transaction op {index}: a check needs a condition (if_absent, if_exists or if_version)"
                )
            check_keys(op.pk, op.sk)
            texts.append(None)
    return texts


def op_problem(op: Op, live_version: int | None) -> str | None:
    """Why ``op``'s condition fails against the stored item (None: it holds)."""
    if op.if_absent and live_version is not None:
        return f"it already exists (version {live_version})"
    if op.if_version is not None and live_version != op.if_version:
        return "it does not exist" if live_version is None else f"its version is {live_version}, not {op.if_version}"
    if op.if_exists and live_version is None:
        return "it does not exist"
    return None


def transaction_error(index: int, op: Op, problem: str) -> TransactionError:
    err = TransactionError(
        f"transaction cancelled at op {index} ({op.kind} pk={op.pk!r}, sk={op.sk!r}): {problem}; nothing was written",
        hint="read the items again and retry the transaction",
    )
    err.index = index  # type: ignore[attr-defined]
    return err


def condition_failed(store: Any, action: str, pk: str, sk: str, if_absent: bool, if_version: int | None) -> ConditionFailedError:
    """The error for a refused conditional put/delete, saying what the stored item is now."""
    current = store.get(pk, sk)  # for the message only: it may have moved again since
    probe = Op("check", pk, sk, if_absent=if_absent, if_version=if_version)
    problem = op_problem(probe, current.version if current else None) or "its condition failed"
    return ConditionFailedError(
        f"{action} of (pk={pk!r}, sk={sk!r}) refused: {problem}",
        hint="another writer changed it; read it again and retry",
    )
