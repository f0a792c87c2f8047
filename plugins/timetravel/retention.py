"""Snapshot retention: every snapshot item carries ``expires_at``; this changes it and purges.

Expired items are invisible to reads at once (the storage contract); the
backend removes them later by itself (DynamoDB TTL) or when asked
(``SqliteStore.purge_expired``, which ``fm debug cleanup`` calls). The
``expiry`` marker outlives the snapshots by ``TOMBSTONE_GRACE_S`` so that a
later read can say they were removed by retention rather than never made.
"""
from __future__ import annotations

import time
from typing import Any

from .history import load_timeline
from .recorder import TOMBSTONE_GRACE_S, pipe_pk, tt_pk


def set_retention(repo: Any, run_ref: str, seconds: float) -> float:
    """Keep a run's snapshots ``seconds`` from now; returns the new expiry (epoch seconds)."""
    tl = load_timeline(repo, run_ref)  # raises the clear errors: unknown run, expired, none
    store, ns = repo.store, repo.ns
    expires = time.time() + seconds
    pk = tt_pk(ns, tl.run.id)
    for item in list(store.query_all(pk, prefix="")):  # read it all before rewriting it
        if item.sk == "expiry":
            store.put(pk, "expiry", {"snapshots_expire_at": expires}, expires_at=expires + TOMBSTONE_GRACE_S)
            continue
        data = dict(item.data)
        if "head" in data:
            data["head"] = {**data["head"], "expires_at": expires}
        store.put(pk, item.sk, data, expires_at=expires)
    digest = tl.head.get("pipeline_hash")
    pdef = store.get(pipe_pk(ns, digest), "def") if digest else None
    if pdef is not None and (pdef.expires_at or 0) < expires:
        # shared by every run of this pipeline version: only ever extended
        store.put(pipe_pk(ns, digest), "def", pdef.data, expires_at=expires)
    return expires


def purge(store: Any) -> int | None:
    """Physically remove expired items when the backend supports it; None when it does that itself."""
    fn = getattr(store, "purge_expired", None)
    return fn() if callable(fn) else None
