"""The embedded storage backend: SQLite, registered as the ``sqlite`` URL scheme.

URL: ``sqlite:///absolute/path/to/file.db`` (parent folders are created),
with optional query parameters ``timeout`` (seconds to wait for another
writer's lock, default 5) and ``migrate=0`` (open an older store without
upgrading it, for ``fm store migrate --check``). The default store
(``flowmason.kernel.storage.default_store_url``) is such a file in the
user's data folder.

The store itself is in ``store.py``; its schema and migrations in
``schema.py``. Both load on first open, not with the plugin: ``sqlite3``
and the store module cost ~20 ms, which commands that never touch the
store (``fm validate``, ``fm --help``) should not pay.
"""
from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from flowmason.kernel.errors import ConfigError
from flowmason.kernel.plugins import hookimpl

__all__ = ["SqliteStore", "SCHEMA_VERSION", "open_sqlite"]


def __getattr__(name: str):
    if name == "SqliteStore":
        from .store import SqliteStore

        return SqliteStore
    if name == "SCHEMA_VERSION":
        from .schema import SCHEMA_VERSION

        return SCHEMA_VERSION
    raise AttributeError(name)


def open_sqlite(url: str):
    """Open (creating or upgrading) the SQLite store named by ``url``."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.scheme.lower() != "sqlite" or not path or parts.netloc:
        raise ConfigError(
            f"bad SQLite store URL {url!r}",
            field="store",
            hint="write sqlite:///absolute/path/to/file.db (three slashes, then the path)",
        )
    # one leading slash however many were written ("sqlite:////abs" is common); "/C:/x" is a Windows path
    path = "/" + path.lstrip("/")
    if len(path) > 2 and path[2] == ":":
        path = path[1:]
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    try:
        timeout = float(query.get("timeout", 5.0))
    except ValueError:
        raise ConfigError(f"bad timeout in store URL {url!r}", field="store", hint="timeout=SECONDS") from None
    migrate = query.get("migrate", "1").lower() not in ("0", "false", "no")
    from .store import SqliteStore

    return SqliteStore(path, timeout=timeout, migrate=migrate)


@hookimpl
def fm_register_storage_backends(register):
    register("sqlite", open_sqlite)
