"""Values larger than an item, kept whole in the store's blob store (``Store.blobs``).

``pack(store, ns, data, fields)`` moves the largest of ``fields`` out of an
item's ``data`` until the rest fits under the item limit: each moved value
is written to ``store.blobs`` as its JSON text (UTF-8, bytes as
``{"__bytes__": base64}``, as every backend stores them) under
``{ns}blob/{sha256}``, its field in the item becomes None, and the item
keeps a reference beside the values::

    data["__blobs__"] = {"output": {"key": "...", "size_bytes": 614411, "sha256": "..."}}

``unpack(store, data)`` puts the values back (and checks their hash), so a
reader gets the item as it was written.

Why this shape:

- The reference is a sibling of the values, never inside one: a stage
  output that happens to look like a reference is data, not a pointer, so a
  pipeline cannot make the store read a blob it did not write (another
  tenant's, say).
- Content addressing makes a rewrite idempotent (a resumed stage writes
  the same key again) and lets equal values share one blob. The flip side:
  a blob may be referenced by several items, so nothing here deletes one;
  FlowMason never deletes the blobs of recorded runs today.
- Callers try the plain write first and pack only when the store refused
  the item as too large (``ItemTooLargeError``), so small values never pay
  for any of this.
- A value that cannot be moved (no blob store configured, or it failed)
  raises ``ValueNotStoredError``: a value is kept whole or the write fails,
  never a truncated preview.
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable

from .errors import ItemTooLargeError, StorageError, ValueNotStoredError
from .storage import MAX_ITEM_BYTES, Store
from .storage_codec import dumps, loads

REFS = "__blobs__"
# room left under the item limit for keys, references and bookkeeping
_HEADROOM = 8 * 1024
_REF_BYTES = 200  # a reference's JSON is about this size


def has_refs(data: dict[str, Any]) -> bool:
    """True when ``data`` keeps some of its values in the blob store."""
    return REFS in data


def refs(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The references of an item: field -> ``{"key", "size_bytes", "sha256"}`` (empty for an inline item)."""
    return data.get(REFS) or {}


def pack(
    store: Store, ns: str, data: dict[str, Any], fields: Iterable[str], *, where: str,
    budget: int = MAX_ITEM_BYTES - _HEADROOM, written: "set[str] | None" = None,
) -> dict[str, Any]:
    """A copy of ``data`` whose largest ``fields`` live in the blob store, so that it fits ``budget`` bytes.

    ``where`` names the item in errors ("run R, stage S"). ``written`` is a
    set of keys the caller already wrote in this process: those are not
    written again (a run's inputs are written with each write of the run).
    Raises ``ValueNotStoredError`` when a value must move and cannot.
    """
    texts = {f: dumps(data[f]) for f in fields if data.get(f) is not None}
    rest = {k: v for k, v in data.items() if k not in texts}
    total = len(dumps(rest).encode()) + sum(len(t.encode()) for t in texts.values())
    out = dict(data)
    moved = dict(refs(data))
    for field in sorted(texts, key=lambda f: len(texts[f]), reverse=True):
        if total <= budget:
            break
        raw = texts[field].encode()
        moved[field] = put_value(store, ns, raw, where=f"{where}, field '{field}'", written=written)
        out[field] = None
        total -= len(raw) - _REF_BYTES
    if moved:
        out[REFS] = moved
    return out


def put_whole(store: Store, ns: str, pk: str, sk: str, data: dict[str, Any], fields: Iterable[str], *, where: str,
              **conditions: Any) -> int:
    """``store.put`` of an item, moving its large ``fields`` to the blob store only if the store refuses it as too large."""
    try:
        return store.put(pk, sk, data, **conditions)
    except ItemTooLargeError:
        return store.put(pk, sk, pack(store, ns, data, fields, where=where), **conditions)


def put_value(store: Store, ns: str, raw: bytes, *, where: str, written: "set[str] | None" = None) -> dict[str, Any]:
    """Write one value's JSON bytes to the blob store; returns its reference."""
    digest = hashlib.sha256(raw).hexdigest()
    ref = {"key": f"{ns}blob/{digest}", "size_bytes": len(raw), "sha256": digest}
    if written is not None and ref["key"] in written:
        return ref
    blobs = store.blobs
    if blobs is None:
        raise ValueNotStoredError(
            f"{where}: the value is {len(raw)} bytes, over the store's item limit of {MAX_ITEM_BYTES} bytes, "
            f"and the store {store.url or type(store).__name__} has no blob store to keep it whole",
            hint="give the store a blob store (DynamoDB: set FM_BLOB_BUCKET to an S3 bucket; template.yaml creates one)",
        )
    try:
        blobs.put(ref["key"], raw)
    except StorageError as exc:
        raise ValueNotStoredError(
            f"{where}: the value ({len(raw)} bytes) could not be written to the blob store {blobs.url}: {exc.message}",
            hint=exc.hint or "check the blob store is reachable and writable, then run again",
        ) from exc
    if written is not None:
        if len(written) > 1024:
            written.clear()
        written.add(ref["key"])
    return ref


def read_raw(store: Store, ref: dict[str, Any], *, where: str) -> bytes:
    """The JSON bytes a reference points to, checked against its hash."""
    blobs = store.blobs
    key = ref.get("key") if isinstance(ref, dict) else None
    if not isinstance(key, str):
        raise StorageError(f"{where}: a bad blob reference {ref!r}", hint="the item was not written by FlowMason")
    if blobs is None:
        raise StorageError(
            f"{where}: the value is in a blob store ({key}), but the store {store.url} has none configured",
            hint="open the store with its blob store (DynamoDB: set FM_BLOB_BUCKET to the bucket it was written with)",
        )
    raw = blobs.get(key)
    if raw is None:
        raise StorageError(
            f"{where}: the value's blob {key} is missing from the blob store {blobs.url}",
            hint="the blob store lost it (a lifecycle rule, a manual delete); the value cannot be read back",
        )
    if ref.get("sha256") and hashlib.sha256(raw).hexdigest() != ref["sha256"]:
        raise StorageError(f"{where}: the blob {key} does not match its hash", hint="the blob store holds a damaged copy")
    return raw


def unpack(store: Store, data: dict[str, Any], *, where: str) -> dict[str, Any]:
    """``data`` with every value the blob store holds put back (``data`` itself when it holds none)."""
    moved = data.get(REFS)
    if not moved:
        return data
    out = {k: v for k, v in data.items() if k != REFS}
    for field, ref in moved.items():
        out[field] = loads(read_raw(store, ref, where=f"{where}, field '{field}'"))
    return out
