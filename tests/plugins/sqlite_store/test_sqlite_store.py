"""SQLite-only behaviour: the file on disk, its schema version, locks and damage.

The contract itself is tested for every backend in tests/conformance/.
"""
from __future__ import annotations

import gc
import hashlib
import sqlite3
import threading

import pytest

from flowmason.kernel.errors import ConfigError, StoreUnavailableError
from flowmason.kernel.storage import open_store
from flowmason.plugins.sqlite_store import SCHEMA_VERSION, SqliteStore, open_sqlite
from flowmason.plugins.sqlite_store.schema import MIGRATIONS, read_version


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_new_store_is_wal_with_current_schema(tmp_path):
    path = tmp_path / "deep" / "er" / "s.db"
    store = open_store(f"sqlite://{path}")
    store.put("p", "s", {"x": 1})
    assert path.exists()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert read_version(raw) == SCHEMA_VERSION
    assert store.info()["journal_mode"] == "wal" and store.info()["schema_version"] == SCHEMA_VERSION
    assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 5000])
def test_corrupt_file_is_refused_and_left_alone(tmp_path, content):
    path = tmp_path / "bad.db"
    path.write_bytes(content)
    before = digest(path)
    with pytest.raises(StoreUnavailableError) as info:
        open_store(f"sqlite://{path}")
    message = str(info.value)
    assert str(path) in message and "move the file aside" in message
    assert digest(path) == before
    assert not (tmp_path / "bad.db-wal").exists() or (tmp_path / "bad.db-wal").stat().st_size == 0


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.db"
    SqliteStore(path).close()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE fm_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    raw.commit()
    raw.close()
    with pytest.raises(StoreUnavailableError, match=f"schema version {SCHEMA_VERSION + 1}, newer") as info:
        open_store(f"sqlite://{path}")
    assert "upgrade flowmason" in str(info.value)


def _store_at_version(path, version):
    raw = sqlite3.connect(path, isolation_level=None)
    for statements in MIGRATIONS[:version]:
        for statement in statements:
            raw.execute(statement)
    raw.execute("INSERT INTO fm_meta VALUES ('schema_version', ?)", (str(version),))
    raw.execute("INSERT INTO items VALUES ('p', 's', '{\"kept\":true}', 3, NULL)")
    raw.close()


def test_older_schema_is_upgraded_on_open_keeping_items(tmp_path):
    path = tmp_path / "old.db"
    _store_at_version(path, 1)
    store = open_store(f"sqlite://{path}")
    assert store.schema_version() == SCHEMA_VERSION
    assert store.get("p", "s").data == {"kept": True} and store.get("p", "s").version == 3
    indexes = {r[0] for r in store._conn().execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "items_expires_at" in indexes


def test_migrate_zero_opens_without_upgrading(tmp_path):
    path = tmp_path / "old.db"
    _store_at_version(path, 1)
    store = open_store(f"sqlite://{path}?migrate=0")
    assert store.schema_version() == 1
    assert store.migrate() == (1, SCHEMA_VERSION)
    assert store.migrate() == (SCHEMA_VERSION, SCHEMA_VERSION)


def test_foreign_sqlite_file_says_to_migrate(tmp_path):
    path = tmp_path / "other.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE unrelated (x)")
    raw.commit()
    store = open_store(f"sqlite://{path}?migrate=0")
    with pytest.raises(StoreUnavailableError, match="fm store migrate"):
        store.get("p", "s")


def test_locked_store_gives_a_clear_error_and_writes_nothing(tmp_path):
    path = tmp_path / "s.db"
    store = open_store(f"sqlite://{path}?timeout=0.2")
    store.put("p", "before", {})
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailableError, match="locked") as info:
            store.put("p", "during", {})
        assert "timeout=SECONDS" in str(info.value)
        with pytest.raises(StoreUnavailableError, match="locked"):
            store.increment("c", "n")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.get("p", "during") is None
    assert store.put("p", "after", {}) == 1


def test_threads_get_their_own_connections(tmp_path):
    store = open_store(f"sqlite://{tmp_path / 's.db'}")
    seen = []

    def work():
        store.put("t", threading.current_thread().name, {})
        seen.append(id(store._conn()))

    threads = [threading.Thread(target=work) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(set(seen)) == 4
    assert len(store.query("t").items) == 4
    gc.collect()
    assert len(store._conns) == 1  # the threads' connections closed with their threads
    store.close()
    assert store.get("t", "x") is None  # reopens after close


def test_writes_are_visible_to_other_connections_at_once(tmp_path):
    path = tmp_path / "s.db"
    a, b = open_store(f"sqlite://{path}"), open_store(f"sqlite://{path}")
    a.put("p", "s", {"v": 1})
    assert b.get("p", "s").data == {"v": 1}
    a.put("p", "s", {"v": 2}, if_version=1)
    assert b.get("p", "s").data == {"v": 2}


def test_expired_items_can_be_purged(tmp_path):
    store = open_store(f"sqlite://{tmp_path / 's.db'}")
    store.put("p", "dead", {}, expires_at=1.0)
    store.put("p", "live", {})
    assert store.purge_expired() == 1
    assert store._conn().execute("SELECT count(*) FROM items").fetchone()[0] == 1


def test_urls(tmp_path):
    for url in (f"sqlite://{tmp_path}/a.db", f"sqlite:///{tmp_path}/a.db", f"sqlite://{tmp_path}/a.db?timeout=1"):
        store = open_sqlite(url)
        assert store.path == tmp_path / "a.db"
        assert store.url == f"sqlite://{tmp_path}/a.db"
    assert open_sqlite(f"sqlite://{tmp_path}/a.db?timeout=1.5").timeout == 1.5
    with pytest.raises(ConfigError, match="three slashes"):
        open_sqlite("sqlite://host/a.db")
    with pytest.raises(ConfigError, match="timeout"):
        open_sqlite(f"sqlite://{tmp_path}/a.db?timeout=soon")
    assert open_store(str(tmp_path / "bare.db")).path == tmp_path / "bare.db"  # a bare path means SQLite
