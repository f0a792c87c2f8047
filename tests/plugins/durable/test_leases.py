"""Leases on a real SQLite store: the heartbeat keeps a held lease alive past its expiry, release ends it,
and a lease taken over by another process after it expired is reported lost (not stolen back)."""
from __future__ import annotations

import threading
import time

import pytest

from flowmason.kernel.storage import open_store
from flowmason.plugins.durable import leases


@pytest.fixture
def fast(monkeypatch, tmp_path):
    monkeypatch.setenv("FM_HEARTBEAT_S", "0.05")
    monkeypatch.setenv("FM_LEASE_S", "0.5")
    leases.reset_settings()
    yield open_store(f"sqlite:///{tmp_path / 'leases.db'}")
    leases.reset_settings()


def test_a_held_lease_outlives_its_expiry_while_renewed_and_is_gone_once_released(fast):
    lease = leases.acquire(fast, "run#a")
    assert lease is not None and leases.acquire(fast, "run#a") is None  # one holder at a time
    time.sleep(1.2)  # more than twice the lease time: only the heartbeat explains it is still there
    info = leases.holder(fast, "run#a")
    assert info["owner"] == leases.OWNER and leases.holder_alive(info)
    lease.release()
    assert leases.holder(fast, "run#a") is None
    assert leases.acquire(fast, "run#a") is not None


def test_a_lease_that_expired_and_was_taken_by_another_process_is_lost_not_taken_back(fast):
    lost = threading.Event()
    lease = leases.acquire(fast, "run#b", on_lost=lost.set)
    leases._beat.forget(lease)  # this process freezes: no renewals
    time.sleep(0.7)
    assert leases.holder(fast, "run#b") is None  # expired
    fast.put("run#b", "lease", {"owner": "other", "host": "elsewhere", "pid": 1}, if_absent=True,
             expires_at=time.time() + 60)
    lease.renew(0.5)  # the frozen process wakes up
    assert lost.is_set() and lease.lost
    lease.release()  # must not delete the other process's lease
    assert leases.holder(fast, "run#b")["owner"] == "other"
