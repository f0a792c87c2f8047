"""Leases and heartbeats: which process runs a run, and whether that process is still alive.

A lease is one item in the run's partition (``RunRepository.partition``)::

    pk = "{ns}run#{run_id}"  sk = "lease"              the run
    pk = "{ns}run#{run_id}"  sk = "lease#{stage}#{n}"  one fan-out chunk of it

    data = {"owner": process id (uuid), "host", "pid", "since": epoch s}
    expires_at = the last renewal + ``lease_s``

It is taken if absent (an expired lease counts as absent) and renewed
only while its owner is this process (``if_version`` on the version read:
a process frozen past the expiry finds the lease taken by another owner
and stops renewing it; its run is told through ``on_lost``). It is
deleted, if still its own, when the run ends or parks. One daemon thread
per process renews every lease it holds each ``heartbeat_s``: a thread,
not an event-loop task, so a stage that blocks the loop does not make a
live run look dead. A run whose lease has expired while its record says
``running`` has lost its process: ``recovery`` resumes it.

Settings (``flowmason.kernel.settings``, read once per process or
``reset_settings()``): ``FM_HEARTBEAT_S`` (default 5), ``FM_LEASE_S``
(default 30, at least twice the heartbeat), ``FM_RECOVERY_SCAN_S`` (30),
``FM_RECOVERY_GRACE_S`` (the lease time), ``FM_MAX_RECOVERIES`` (5),
``FM_CANCEL_POLL_S`` (1).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from flowmason.kernel.errors import ConditionFailedError, StorageError
from flowmason.kernel.storage import Store

log = logging.getLogger("flowmason.durable")

OWNER = uuid.uuid4().hex  # this process, in every lease it holds
HOST = socket.gethostname()


@dataclass(frozen=True)
class Settings:
    heartbeat_s: float = 5.0
    lease_s: float = 30.0
    scan_s: float = 30.0
    grace_s: float = 30.0
    max_recoveries: int = 5
    cancel_poll_s: float = 1.0

    @classmethod
    def from_env(cls) -> "Settings":
        """From ``flowmason.kernel.settings`` (FM_HEARTBEAT_S and friends)."""
        from flowmason.kernel.settings import get_settings

        fm = get_settings()
        lease = max(2 * fm.heartbeat_s, fm.lease_s)
        grace = fm.recovery_grace_s if fm.recovery_grace_s is not None else lease
        return cls(heartbeat_s=fm.heartbeat_s, lease_s=lease, scan_s=fm.recovery_scan_s, grace_s=grace,
                   max_recoveries=fm.max_recoveries, cancel_poll_s=fm.cancel_poll_s)


_settings: Settings | None = None


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def reset_settings() -> None:
    """Read the settings again (tests that change them); the heartbeat thread picks the new period up now."""
    global _settings
    _settings = None
    _beat.wake()


class Lease:
    """A lease this process holds; ``release()`` when the run ends or parks."""

    def __init__(self, store: Store, pk: str, sk: str, version: int, data: dict[str, Any],
                 on_lost: Callable[[], None] | None) -> None:
        self.store = store
        self.pk = pk
        self.sk = sk
        self.version = version
        self.data = data
        self.on_lost = on_lost
        self.lost = False
        self.released = False

    def renew(self, lease_s: float) -> None:
        expires = time.time() + lease_s
        try:
            # the owner is checked, not only the version: a lease taken over after it expired starts at version 1 again
            item = self.store.get(self.pk, self.sk)
            if item is None:  # expired while this process was frozen, and nobody took it: take it again
                self.version = self.store.put(self.pk, self.sk, self.data, if_absent=True, expires_at=expires)
                return
            if item.data.get("owner") != self.data["owner"]:
                raise ConditionFailedError(f"the lease {self.pk}/{self.sk} belongs to another process")
            self.version = self.store.put(self.pk, self.sk, self.data, if_version=item.version, expires_at=expires)
        except ConditionFailedError:
            # taken by another process after it expired (this one was frozen or cut off): it owns the run now
            self.lost = True
            _beat.forget(self)
            log.warning("lost the lease %s/%s to another process", self.pk, self.sk)
            if self.on_lost is not None:
                self.on_lost()

    def release(self) -> None:
        """Delete the lease if it is still this holder's; a second call does nothing (another holder may have it now)."""
        _beat.forget(self)
        if self.lost or self.released:
            return
        self.released = True
        try:
            item = self.store.get(self.pk, self.sk)
            if item is not None and item.data.get("owner") == self.data["owner"]:
                self.store.delete(self.pk, self.sk, if_version=item.version)
        except StorageError:  # the lease then simply expires
            log.warning("could not release the lease %s/%s", self.pk, self.sk, exc_info=True)


def acquire(store: Store, pk: str, sk: str = "lease", *, on_lost: Callable[[], None] | None = None,
            force: bool = False) -> Lease | None:
    """Take the lease if nobody live holds it (or, with ``force``, anyway); None when it is taken."""
    data = {"owner": OWNER, "host": HOST, "pid": os.getpid(), "since": time.time()}
    expires = time.time() + settings().lease_s
    try:
        if force:
            version = store.put(pk, sk, data, expires_at=expires)
        else:
            version = store.put(pk, sk, data, if_absent=True, expires_at=expires)
    except ConditionFailedError:
        return None
    lease = Lease(store, pk, sk, version, data, on_lost)
    _beat.hold(lease)
    return lease


def holder(store: Store, pk: str, sk: str = "lease") -> dict[str, Any] | None:
    """Who holds a live lease (``owner``, ``host``, ``pid``, ``since``, ``expires_at``), or None."""
    item = store.get(pk, sk)
    if item is None:
        return None
    return {**item.data, "expires_at": item.expires_at}


def holder_alive(info: dict[str, Any]) -> bool:
    """False when the holder is a process of this host that no longer exists (its lease has not expired yet)."""
    if info.get("host") != HOST or not info.get("pid"):
        return True
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, ValueError):
        return True
    return True


class _Heartbeat:
    """The process's one renewal thread; it starts with the first lease and idles when none is held."""

    def __init__(self) -> None:
        self._leases: dict[int, Lease] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, lease: Lease) -> None:
        with self._lock:
            self._leases[id(lease)] = lease
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="flowmason-heartbeat", daemon=True)
                self._thread.start()

    def forget(self, lease: Lease) -> None:
        with self._lock:
            self._leases.pop(id(lease), None)

    def wake(self) -> None:
        self._wake.set()

    def held(self) -> list[Lease]:
        with self._lock:
            return list(self._leases.values())

    def _loop(self) -> None:
        for _ in range(10**9):  # bounded; a daemon thread ends with the process
            cfg = settings()
            if self._wake.wait(cfg.heartbeat_s):
                self._wake.clear()
                cfg = settings()
            for lease in self.held():
                try:
                    lease.renew(cfg.lease_s)
                except Exception:  # noqa: BLE001 - a store hiccup: the next beat tries again before expiry
                    log.warning("heartbeat of %s/%s failed", lease.pk, lease.sk, exc_info=True)


_beat = _Heartbeat()


def held_leases() -> list[Lease]:
    """The leases this process holds now (its live runs and chunks)."""
    return _beat.held()


def holding(pk: str, sk: str = "lease") -> Lease | None:
    """The lease this process holds on ``pk``/``sk``, if any (a host already runs that run here)."""
    for lease in _beat.held():
        if lease.pk == pk and lease.sk == sk:
            return lease
    return None


def adopt(store: Store, pk: str, sk: str, data: dict[str, Any], version: int = 1) -> Lease:
    """Start renewing a lease written by the caller (inside its own transaction: ``lease_op``)."""
    lease = Lease(store, pk, sk, version, data, None)
    _beat.hold(lease)
    return lease


def lease_op(pk: str, sk: str = "lease") -> Any:
    """The if-absent put that takes a lease, for a caller that writes it together with other items."""
    from flowmason.kernel.storage import Op

    data = {"owner": OWNER, "host": HOST, "pid": os.getpid(), "since": time.time()}
    return Op("put", pk, sk, data, if_absent=True, expires_at=time.time() + settings().lease_s)
