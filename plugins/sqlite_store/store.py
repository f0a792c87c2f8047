"""The SQLite implementation of the storage contract (`SqliteStore`).

One file, standard-library ``sqlite3``, WAL journal, ``synchronous=NORMAL``
(durable across process crashes; a power cut may lose the last commits,
never corrupt the file). Safe for several threads and processes:

- each thread gets its own connection (a ``threading.local``), opened on
  first use with the PRAGMAs set once, never per call; a forked child drops
  the connections it inherited (``os.register_at_fork``);
- every single write is one statement (``INSERT ... ON CONFLICT ... RETURNING``
  with the condition in its ``WHERE``), so it is atomic without an explicit
  transaction; read-modify-write (increment, transactions) runs under
  ``BEGIN IMMEDIATE``, which takes the write lock up front so two writers
  wait on ``busy_timeout`` instead of failing on a lock upgrade.

``put`` is on the engine's hot path (one stage result per stage), so it does
the least it can: cheap key checks inline (the exact ones only for
suspicious keys), one C-level ``json`` encode, an exact UTF-8 size check only
when the text could be past the limit, one cached prepared statement.

Versions: the first write is 1 and every write adds 1 to the stored row,
even one over an expired item (DynamoDB cannot do otherwise in one request,
and the backends must agree); ``if_absent`` writes version 1, and so does
``batch_put``, a blind bulk write (see its docstring).
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from json import loads as _json_loads
from pathlib import Path
from typing import Any, Iterable, Iterator

from flowmason.kernel.errors import StorageError, StoreUnavailableError
from flowmason.kernel.storage import MAX_ITEM_BYTES, Item, Op, Page, Store
from flowmason.kernel.storage_codec import (
    check_expiry,
    check_item,
    check_keys,
    check_restored,
    check_size,
    condition_failed,
    decode_cursor,
    encode_cursor,
    page_bounds,
    loads,
    op_problem,
    transaction_error,
    unicode_error,
    validate_ops,
)
from flowmason.kernel.storage_codec import _BYTES_MARK
from flowmason.kernel.storage_codec import _encoder as _dumps  # the bare C encoder; put wraps errors itself

from .schema import SCHEMA_VERSION, apply_migrations, read_version

_LIVE = "(expires_at IS NULL OR expires_at > ?)"

_GET = f"SELECT data, version, expires_at FROM items WHERE pk = ? AND sk = ? AND {_LIVE}"
_PUT = (
    "INSERT INTO items (pk, sk, data, version, expires_at) VALUES (?, ?, ?, 1, ?) "
    "ON CONFLICT (pk, sk) DO UPDATE SET data = excluded.data, version = items.version + 1, "
    "expires_at = excluded.expires_at RETURNING version"
)
# if_absent: an expired row counts as absent and is overwritten; a live one makes the WHERE false.
_PUT_IF_ABSENT = (
    "INSERT INTO items (pk, sk, data, version, expires_at) VALUES (?, ?, ?, 1, ?) "
    "ON CONFLICT (pk, sk) DO UPDATE SET data = excluded.data, version = 1, expires_at = excluded.expires_at "
    "WHERE items.expires_at IS NOT NULL AND items.expires_at <= ? RETURNING version"
)
_PUT_IF_VERSION = (
    "UPDATE items SET data = ?, version = version + 1, expires_at = ? "
    f"WHERE pk = ? AND sk = ? AND version = ? AND {_LIVE} RETURNING version"
)
_RESTORE = "INSERT OR REPLACE INTO items (pk, sk, data, version, expires_at) VALUES (?, ?, ?, ?, ?)"
_DELETE = "DELETE FROM items WHERE pk = ? AND sk = ? RETURNING expires_at"
_DELETE_IF_VERSION = f"DELETE FROM items WHERE pk = ? AND sk = ? AND version = ? AND {_LIVE} RETURNING expires_at"
_STATE = "SELECT data, version, expires_at FROM items WHERE pk = ? AND sk = ?"
_UPSERT_EXACT = (
    "INSERT INTO items (pk, sk, data, version, expires_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (pk, sk) DO UPDATE SET data = excluded.data, version = excluded.version, "
    "expires_at = excluded.expires_at"
)
_DELETE_EXACT = "DELETE FROM items WHERE pk = ? AND sk = ?"
_SCAN = (
    "SELECT pk, sk, data, version, expires_at FROM items "
    f"WHERE (pk, sk) > (?, ?) AND {_LIVE} ORDER BY pk, sk LIMIT ?"
)

# UnicodeEncodeError: a lone surrogate in a key or value cannot become UTF-8
_DRIVER_ERRORS = (sqlite3.Error, UnicodeEncodeError)

_new_item = Item.__new__
_set = object.__setattr__

# Stores alive in this process, so a forked child can drop inherited connections.
_STORES: "weakref.WeakSet[SqliteStore]" = weakref.WeakSet()
# Connections a forked child inherited: held (never used, never closed) for the
# child's lifetime, because closing them could checkpoint or unlock the parent's file.
_INHERITED: list[sqlite3.Connection] = []


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._forget_connections()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the C type cannot).

    The store tracks its connections in a WeakSet: when a thread ends, its
    ``threading.local`` drops the last strong reference and the connection
    closes, so a server that starts a thread per request does not pile up
    open files.
    """


def _make_item(pk: str, sk: str, data: str, version: int, expires_at: float | None) -> Item:
    # Item is a frozen dataclass; filling its fields directly skips the
    # frozen __init__'s per-field object.__setattr__ dance (3x faster on a page of results).
    item = _new_item(Item)
    # json.loads straight away unless the text holds bytes markers (rare): saves a call per row
    value = _json_loads(data) if _BYTES_MARK not in data else loads(data)
    _set(item, "__dict__", {"pk": pk, "sk": sk, "data": value, "version": version, "expires_at": expires_at})
    return item


def _query_sql(lower: str | None, upper: str | None, reverse: bool) -> str:
    # lower is ">=" or ">" (after a forward cursor); upper "<" ; None: no bound
    where = ["pk = ?"]
    if lower:
        where.append(f"sk {lower} ?")
    if upper:
        where.append(f"sk {upper} ?")
    where.append(_LIVE)
    order = "DESC" if reverse else "ASC"
    return f"SELECT sk, data, version, expires_at FROM items WHERE {' AND '.join(where)} ORDER BY sk {order} LIMIT ?"


_QUERIES = {(lo, up, rev): _query_sql(lo, up, rev) for lo in (None, ">=", ">") for up in (None, "<") for rev in (False, True)}


class SqliteStore(Store):
    """Items in one SQLite file. See the module docstring for the concurrency model."""

    latest_schema_version = SCHEMA_VERSION

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0, migrate: bool = True) -> None:
        self.path = Path(path)
        self.url = f"sqlite://{self.path}" if self.path.is_absolute() else f"sqlite:///{self.path}"
        self.timeout = timeout
        self._local = threading.local()
        self._conns: "weakref.WeakSet[_Connection]" = weakref.WeakSet()
        self._conns_lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot create the folder for the SQLite store {self.path}: {exc}",
                hint="check permissions, or point --store / FM_STORE at a writable path",
            ) from exc
        conn = self._conn()
        try:
            version = read_version(conn)
            if version > SCHEMA_VERSION:
                raise StoreUnavailableError(
                    f"the store {self.path} has schema version {version}, newer than this FlowMason "
                    f"understands ({SCHEMA_VERSION})",
                    hint="upgrade flowmason (pip install -U flowmason), or point --store / FM_STORE at another file",
                )
            if version < SCHEMA_VERSION and migrate:
                apply_migrations(conn)
        except sqlite3.Error as exc:
            self.close()
            raise self._error(exc) from exc
        except StorageError:
            self.close()
            raise
        _STORES.add(self)
        from .blobs import SqliteBlobs

        self.blobs = SqliteBlobs(self)

    # -- connections --

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open_connection()
        return conn

    def _open_connection(self) -> sqlite3.Connection:
        try:
            # isolation_level=None: autocommit; transactions are explicit (BEGIN IMMEDIATE).
            conn = sqlite3.connect(
                self.path,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=128,
                factory=_Connection,
            )
        except _DRIVER_ERRORS as exc:
            raise self._error(exc) from exc
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")  # persistent in the file: set once per store
            conn.execute("PRAGMA synchronous = NORMAL")  # per connection; with WAL it stays crash-safe
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc) from exc
        self._local.conn = conn
        with self._conns_lock:
            self._conns.add(conn)
        return conn

    def _forget_connections(self) -> None:
        # in a forked child: the parent's connections must not be used (or closed) here
        _INHERITED.extend(self._conns)
        self._local = threading.local()
        self._conns = weakref.WeakSet()
        self._conns_lock = threading.Lock()

    def close(self) -> None:
        with self._conns_lock:
            conns, self._conns = list(self._conns), weakref.WeakSet()
        self._local = threading.local()
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover - closing a connection of another thread mid-statement
                pass

    def _error(self, exc: Exception) -> StorageError:
        """Translate a driver error into one that says what happened and what to do."""
        if isinstance(exc, UnicodeEncodeError):
            return unicode_error(exc)
        msg = str(exc)
        low = msg.lower()
        where = f"SQLite store {self.path}"
        if "locked" in low or "busy" in low:
            return StoreUnavailableError(
                f"{where} is locked by another process or thread (waited {self.timeout:g}s): {msg}",
                hint="finish or stop the other fm process; or wait longer with ?timeout=SECONDS in the store URL",
            )
        if "no such table" in low:
            return StoreUnavailableError(
                f"{where} has no FlowMason tables ({msg})",
                hint="run `fm store migrate`, or point --store / FM_STORE at a FlowMason store",
            )
        if "not a database" in low or "malformed" in low or "corrupt" in low or "encrypted" in low:
            return StoreUnavailableError(
                f"{where} is not a readable SQLite database ({msg}); nothing was changed",
                hint="move the file aside (FlowMason then creates a new store) and restore from a backup or "
                "`fm store export` output; `sqlite3 FILE .recover` may rescue data",
            )
        if "readonly" in low or "unable to open" in low or "permission" in low:
            return StoreUnavailableError(
                f"{where} cannot be opened for writing ({msg})",
                hint="check the permissions of the file and of its folder (SQLite writes -wal/-shm files beside it)",
            )
        if "disk is full" in low or "disk i/o" in low:
            return StoreUnavailableError(f"{where}: {msg}", hint="free disk space or move the store")
        return StorageError(f"{where}: {msg}")

    # -- reads --

    def get(self, pk: str, sk: str) -> Item | None:
        conn = getattr(self._local, "conn", None) or self._open_connection()
        try:
            row = conn.execute(_GET, (pk, sk, time.time())).fetchone()
        except _DRIVER_ERRORS as exc:
            raise self._error(exc) from exc
        if row is None:
            return None
        return _make_item(pk, sk, row[0], row[1], row[2])

    def query(
        self,
        pk: str,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> Page:
        lo, hi = page_bounds(prefix, start, end, limit)
        lower = ">=" if lo is not None else None
        upper = "<" if hi is not None else None
        if cursor is not None:
            after = decode_cursor(cursor)
            # the cursor is the last key returned, so it lies inside [lo, hi): it replaces one bound
            if reverse:
                upper, hi = "<", after
            else:
                lower, lo = ">", after
        params: list[Any] = [pk]
        if lower:
            params.append(lo)
        if upper:
            params.append(hi)
        params.append(time.time())
        params.append(limit + 1)  # one more than asked: tells whether another page exists
        conn = getattr(self._local, "conn", None) or self._open_connection()
        try:
            rows = conn.execute(_QUERIES[(lower, upper, reverse)], params).fetchall()
        except _DRIVER_ERRORS as exc:
            raise self._error(exc) from exc
        more = len(rows) > limit
        if more:
            del rows[limit:]
        items = [_make_item(pk, r[0], r[1], r[2], r[3]) for r in rows]
        return Page(items, encode_cursor(rows[-1][0]) if more else None)

    def scan_all(self) -> Iterator[Item]:
        # keyset pages: no read transaction stays open while the caller works
        last = ("", "")
        while True:
            try:
                rows = self._conn().execute(_SCAN, (*last, time.time(), 500)).fetchall()
            except _DRIVER_ERRORS as exc:
                raise self._error(exc) from exc
            for pk, sk, data, version, expires_at in rows:
                yield _make_item(pk, sk, data, version, expires_at)
            if len(rows) < 500:
                return
            last = (rows[-1][0], rows[-1][1])

    # -- single writes --

    def put(
        self,
        pk: str,
        sk: str,
        data: dict[str, Any],
        *,
        if_absent: bool = False,
        if_version: int | None = None,
        expires_at: float | None = None,
    ) -> int:
        # inline fast checks; the full ones only when something looks off
        if type(pk) is not str or type(sk) is not str or not pk or not sk or len(pk) > 256 or len(sk) > 256:
            check_keys(pk, sk)
        if type(data) is not dict:
            text = check_item(pk, sk, data)
        else:
            try:
                text = _dumps(data)
            except (TypeError, ValueError, RecursionError):
                text = check_item(pk, sk, data)  # raises the clear error
            if (len(pk) + len(sk) + len(text)) * 4 > MAX_ITEM_BYTES:
                check_size(pk, sk, text)
        if expires_at is not None:
            check_expiry(expires_at)
        conn = getattr(self._local, "conn", None) or self._open_connection()
        try:
            if if_version is None and not if_absent:
                return conn.execute(_PUT, (pk, sk, text, expires_at)).fetchone()[0]
            if if_absent:
                if if_version is not None:
                    raise StorageError("pass either if_absent or if_version, not both", hint="drop one condition")
                row = conn.execute(_PUT_IF_ABSENT, (pk, sk, text, expires_at, time.time())).fetchone()
            else:
                row = conn.execute(_PUT_IF_VERSION, (text, expires_at, pk, sk, if_version, time.time())).fetchone()
        except _DRIVER_ERRORS as exc:
            raise self._error(exc) from exc
        if row is None:
            raise condition_failed(self, "put", pk, sk, if_absent, if_version)
        return row[0]

    def delete(self, pk: str, sk: str, *, if_version: int | None = None) -> bool:
        conn = self._conn()
        now = time.time()
        try:
            if if_version is None:
                row = conn.execute(_DELETE, (pk, sk)).fetchone()
            else:
                row = conn.execute(_DELETE_IF_VERSION, (pk, sk, if_version, now)).fetchone()
        except _DRIVER_ERRORS as exc:
            raise self._error(exc) from exc
        if row is None:
            if if_version is not None:
                raise condition_failed(self, "delete", pk, sk, False, if_version)
            return False
        return row[0] is None or row[0] > now  # deleting an expired item reports it absent

    # -- read-modify-write under the write lock --

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error; driver errors become StorageErrors."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except _DRIVER_ERRORS as exc:
            raise self._error(exc) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, _DRIVER_ERRORS):
                raise self._error(exc) from exc
            raise

    def increment(
        self, pk: str, sk: str, field: str = "n", amount: int = 1, *, expires_at: float | None = None
    ) -> int:
        check_keys(pk, sk)
        if type(amount) is not int:
            raise StorageError(f"increment amount must be an int, got {amount!r}")
        check_expiry(expires_at)
        with self._write_transaction() as conn:
            now = time.time()
            row = conn.execute(_STATE, (pk, sk)).fetchone()
            if row is None or (row[2] is not None and row[2] <= now):
                data, version, expiry = {field: amount}, 1, expires_at  # absent or expired: start again
            else:
                data = loads(row[0])
                current = data.get(field, 0)
                if type(current) is not int:
                    raise StorageError(
                        f"cannot increment field {field!r} of (pk={pk!r}, sk={sk!r}): it holds {current!r}",
                        hint="use a separate item for the counter",
                    )
                data[field] = current + amount
                version = row[1] + 1
                expiry = row[2] if row[2] is not None else expires_at  # a live counter keeps its window
            conn.execute(_UPSERT_EXACT, (pk, sk, check_item(pk, sk, data), version, expiry))
        return data[field]

    def transact(self, ops: list[Op]) -> None:
        texts = validate_ops(ops)
        with self._write_transaction() as conn:
            now = time.time()
            for index, op in enumerate(ops):
                row = conn.execute(_STATE, (op.pk, op.sk)).fetchone()
                live = row is not None and (row[2] is None or row[2] > now)
                problem = op_problem(op, row[1] if live else None)
                if problem:
                    raise transaction_error(index, op, problem)
                if op.kind == "put":
                    version = 1 if op.if_absent else (row[1] + 1 if row else 1)
                    conn.execute(_UPSERT_EXACT, (op.pk, op.sk, texts[index], version, op.expires_at))
                elif op.kind == "delete":
                    conn.execute(_DELETE_EXACT, (op.pk, op.sk))

    def batch_put(self, items: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Blind bulk write: each item replaces what was there as a fresh item (version 1, no expiry).

        DynamoDB's BatchWriteItem cannot compute a next version, and the
        backends must agree; use put/transact where optimistic concurrency matters.
        """
        self.restore(Item(pk, sk, data, 1) for pk, sk, data in items)

    def restore(self, items: Iterable[Item]) -> int:
        """Write items exactly as given (version and expiry included), in one transaction (import).

        A key given twice is written once, with its last value.
        """
        rows = {(i.pk, i.sk): (i.pk, i.sk, check_restored(i), i.version, i.expires_at) for i in items}
        if rows:
            with self._write_transaction() as conn:
                conn.executemany(_RESTORE, rows.values())
        return len(rows)

    # -- housekeeping --

    def purge_expired(self) -> int:
        """Physically remove expired items (reads already ignore them); returns how many."""
        try:
            return self._conn().execute("DELETE FROM items WHERE expires_at <= ?", (time.time(),)).rowcount
        except _DRIVER_ERRORS as exc:
            raise self._error(exc) from exc

    def schema_version(self) -> int:
        try:
            return read_version(self._conn())
        except _DRIVER_ERRORS as exc:
            raise self._error(exc) from exc

    def migrate(self) -> tuple[int, int]:
        """Upgrade the schema to this FlowMason's version; returns (from, to)."""
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreUnavailableError(
                f"the store {self.path} has schema version {current}, newer than this FlowMason understands "
                f"({SCHEMA_VERSION})",
                hint="upgrade flowmason",
            )
        try:
            return apply_migrations(self._conn())
        except _DRIVER_ERRORS as exc:
            raise self._error(exc) from exc

    def info(self) -> dict[str, Any]:
        conn = self._conn()
        try:
            count = conn.execute(f"SELECT count(*) FROM items WHERE {_LIVE}", (time.time(),)).fetchone()[0]
            journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
        except _DRIVER_ERRORS as exc:
            raise self._error(exc) from exc
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        return {
            "backend": "sqlite",
            "url": self.url,
            "path": str(self.path),
            "size_bytes": size,
            "items": count,
            "schema_version": self.schema_version(),
            "journal_mode": journal,
        }

