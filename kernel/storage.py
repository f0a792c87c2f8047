"""The storage contract: items under a partition key and a sort key.

Domain code never talks to SQLite or DynamoDB directly; it talks to a
`Store`. The contract is the common ground of both backends:

- ``get(pk, sk)`` -> item dict or None
- ``put(pk, sk, data, if_absent=..., if_version=..., expires_at=...)``:
  conditional writes for optimistic concurrency; returns the new version
- ``delete(pk, sk, if_version=...)``
- ``query(pk, prefix=..., start=..., end=..., limit=..., cursor=..., reverse=...)``:
  items of one partition in sort-key order, with an opaque cursor
- ``increment(pk, sk, field, amount, expires_at=...)``: atomic counter with expiry
- ``transact([...])``: a small all-or-nothing group of puts, deletes and condition checks
- ``batch_put([...])``: many unconditional puts, efficiently

Items are JSON-like dicts (str, int, float, bool, None, list, dict, bytes).
Every stored item carries a ``version`` (1 on first write, +1 per write) and
an optional ``expires_at`` (epoch seconds); expired items are invisible to
reads even before a backend's cleanup removes them.

Values too large for an item go to the store's ``blobs`` (a ``BlobStore``:
put / get / delete of bytes by key), which the backend provides beside
its items (SQLite: a table in the same file; DynamoDB: an S3 bucket);
``flowmason.kernel.blobs`` moves them out and back, and nothing is ever
kept as a truncated preview.

Backends are plugins registered through ``fm_register_storage_backends``
and opened by URL with ``open_store``: ``sqlite:///path/to/file.db``,
``dynamodb://TABLE?endpoint_url=...&region=...``. Every backend passes the
suite in ``tests/conformance/``.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from .errors import ConfigError

# The largest item every backend accepts (DynamoDB's hard limit is 400 KB
# including attribute names; we keep the same bound everywhere so a pipeline
# that works on a laptop also works on Lambda).
MAX_ITEM_BYTES = 400 * 1024


# the most pages `Store.query_all` reads of one partition
MAX_PAGES = 100_000


@dataclass(frozen=True)
class Item:
    pk: str
    sk: str
    data: dict[str, Any]
    version: int
    expires_at: float | None = None


@dataclass
class Page:
    items: list[Item]
    cursor: str | None = None  # opaque; pass back to get the next page; None means no more


@dataclass(frozen=True)
class Op:
    """One operation inside ``transact``.

    kind: ``put`` (data required), ``delete``, or ``check`` (assert a
    condition without writing). Conditions: ``if_absent`` / ``if_version``
    (for ``check``, ``if_exists`` too).
    """

    kind: Literal["put", "delete", "check"]
    pk: str
    sk: str
    data: dict[str, Any] | None = None
    if_absent: bool = False
    if_version: int | None = None
    if_exists: bool = False
    expires_at: float | None = None


class BlobStore(ABC):
    """Bytes by key, for values larger than an item (``flowmason.kernel.blobs`` decides what goes here).

    Keys are non-empty strings of at most 1024 UTF-8 bytes (S3's limit);
    a ``put`` of an existing key replaces it. Backends raise only
    ``StorageError`` subclasses. ``presigned_url`` is for hosts that
    cannot answer with a large body themselves (Lambda's 6 MB response):
    a backend that can hand out a time-limited download link returns one.
    """

    url: str = ""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None when there are none."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""

    def presigned_url(self, key: str, *, expires_s: int = 300) -> str | None:
        """A time-limited URL that downloads ``key`` without credentials, or None (the default) when unsupported."""
        return None


class Store(ABC):
    """The storage contract. Backends raise only ``flowmason.kernel.errors.StorageError`` subclasses."""

    url: str = ""
    # where values larger than an item go; None when the backend has no blob store configured
    blobs: BlobStore | None = None

    @abstractmethod
    def get(self, pk: str, sk: str) -> Item | None: ...

    @abstractmethod
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
        """Write an item; returns its new version. Raises ConditionFailedError when a condition fails."""

    @abstractmethod
    def delete(self, pk: str, sk: str, *, if_version: int | None = None) -> bool:
        """Remove an item; True if it existed."""

    @abstractmethod
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
        """Items of partition ``pk`` in sort-key order; ``start``<= sk < ``end`` and/or ``prefix``."""

    @abstractmethod
    def increment(
        self, pk: str, sk: str, field: str = "n", amount: int = 1, *, expires_at: float | None = None
    ) -> int:
        """Atomically add ``amount`` to a numeric field (created at 0); returns the new value.

        A counter whose item has expired starts again from 0 with the new expiry.
        """

    @abstractmethod
    def transact(self, ops: list[Op]) -> None:
        """All or nothing. Raises TransactionError (with the failing op's index) and writes nothing."""

    @abstractmethod
    def batch_put(self, items: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Unconditional puts of many items: a blind bulk write.

        Each item replaces what was there as a fresh item (version 1, no
        expiry): DynamoDB's BatchWriteItem cannot compute a next version, and
        the backends agree. Use ``put``/``transact`` where optimistic
        concurrency matters. Not atomic on DynamoDB (groups of 25).
        """

    def close(self) -> None:  # pragma: no cover - backends override when they hold resources
        pass

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query_all(self, pk: str, *, prefix: str | None = None, page_size: int = 500) -> Iterator[Item]:
        """Every item of partition ``pk`` (under ``prefix``) in sort-key order, read page by page.

        Bounded: a cursor that never ends (a backend bug) stops after
        ``MAX_PAGES`` pages instead of looping forever.
        """
        cursor = None
        for _ in range(MAX_PAGES):
            page = self.query(pk, prefix=prefix, limit=page_size, cursor=cursor)
            yield from page.items
            cursor = page.cursor
            if not cursor:
                return

    def scan_all(self) -> Iterable[Item]:
        """Every live item (export/migration). Backends override; the default is not available."""
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """Where the store is and its size, for `fm store info`."""
        return {"url": self.url}


def data_dir() -> Path:
    """The user's data folder (XDG on Linux, ~/Library on macOS, %APPDATA% on Windows)."""
    from .settings import get_settings

    home = get_settings().home
    if home:
        return Path(home)
    if os.name == "nt":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif os.uname().sysname == "Darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "flowmason"


def default_store_url() -> str:
    """``FM_STORE`` if set, else the embedded SQLite file in the user's data folder."""
    from .settings import get_settings

    url = get_settings().store
    if url:
        return url
    return f"sqlite:///{data_dir() / 'flowmason.db'}"


def open_store(url: str | None = None) -> Store:
    """Open a store by URL through the registered backends. A bare path means SQLite."""
    from .plugins import get_registry

    url = url or default_store_url()
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    scheme = url.split("://", 1)[0].lower()
    backends = get_registry().storage_backends
    factory = backends.get(scheme)
    if factory is None:
        raise ConfigError(
            f"no storage backend for '{scheme}://' (known: {', '.join(sorted(backends)) or 'none'})",
            field="store",
            hint="use sqlite:///path/to/file.db or dynamodb://TABLE, and check the plugin is loaded",
        )
    return factory(url)
