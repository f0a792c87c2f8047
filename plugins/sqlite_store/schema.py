"""Schema of the SQLite store and its migrations.

The version lives in the table ``fm_meta`` (key ``schema_version``). Each
entry of ``MIGRATIONS`` brings a store from version ``i`` to ``i + 1``; a
new store runs them all. Opening an older store upgrades it inside one
``BEGIN IMMEDIATE`` transaction (so two processes opening it at once do not
both migrate); a store written by a newer FlowMason is refused, because
this code cannot know what the newer layout means.

To change the layout: append a migration, never edit a released one.
"""
from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 0 -> 1: the items table. WITHOUT ROWID: the primary key is the row's
    # address, so a query by (pk, sk range) is one b-tree walk.
    (
        "CREATE TABLE fm_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        """CREATE TABLE items (
            pk TEXT NOT NULL,
            sk TEXT NOT NULL,
            data TEXT NOT NULL,
            version INTEGER NOT NULL,
            expires_at REAL,
            PRIMARY KEY (pk, sk)
        ) WITHOUT ROWID""",
    ),
    # 1 -> 2: an index on expiry so `purge_expired` does not scan every item.
    ("CREATE INDEX items_expires_at ON items (expires_at) WHERE expires_at IS NOT NULL",),
    # 2 -> 3: values larger than an item (the blob store, ``blobs.py``). A rowid table: its rows are
    # large, which WITHOUT ROWID tables handle badly.
    ("CREATE TABLE blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL)",),
)

SCHEMA_VERSION = len(MIGRATIONS)


def read_version(conn: sqlite3.Connection) -> int:
    """The stored schema version; 0 for an empty database."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'fm_meta'"
    ).fetchone()
    if not has_meta:
        return 0
    row = conn.execute("SELECT value FROM fm_meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def apply_migrations(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> tuple[int, int]:
    """Bring the database to ``target`` inside one write transaction; returns (from, to).

    The caller has checked that the stored version is not newer than ``target``.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = read_version(conn)  # re-read under the write lock: another process may have migrated
        for index in range(current, target):
            for statement in MIGRATIONS[index]:
                conn.execute(statement)
        if target != current:
            conn.execute(
                "INSERT INTO fm_meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(target),),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return current, max(current, target)
