"""The SQLite store's blob store: values larger than an item, in the table ``blobs`` of the same file.

Kept in the same file rather than in files beside it, so a store is still
one file to copy, back up or delete, and a blob is
written with the same durability as the item that refers to it. Uses the
store's per-thread connections (see ``store.py``).
"""
from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from flowmason.kernel.errors import StorageError
from flowmason.kernel.storage import BlobStore
from flowmason.kernel.storage_codec import check_blob_key

if TYPE_CHECKING:
    from .store import SqliteStore


class SqliteBlobs(BlobStore):
    def __init__(self, store: "SqliteStore") -> None:
        self._store = store
        self.url = f"{store.url}#blobs"

    def _run(self, sql: str, params: tuple) -> sqlite3.Cursor:
        try:
            return self._store._conn().execute(sql, params)
        except (sqlite3.Error, UnicodeEncodeError) as exc:
            raise self._store._error(exc) from exc

    def put(self, key: str, data: bytes) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise StorageError(f"blob data must be bytes, got {type(data).__name__} (key {key!r})")
        self._run("INSERT OR REPLACE INTO blobs (key, data) VALUES (?, ?)", (check_blob_key(key), bytes(data)))

    def get(self, key: str) -> bytes | None:
        row = self._run("SELECT data FROM blobs WHERE key = ?", (check_blob_key(key),)).fetchone()
        return bytes(row[0]) if row is not None else None

    def delete(self, key: str) -> bool:
        return self._run("DELETE FROM blobs WHERE key = ? RETURNING 1", (check_blob_key(key),)).fetchone() is not None
