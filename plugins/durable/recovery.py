"""Recovery: find runs whose process died, and resume them or say why they cannot be.

A run is stale when its record says ``pending`` or ``running`` and nobody
holds its lease (``leases``): the lease expired, or its holder was a
process of this host that no longer exists. Runs are found through the
active index (``RunRepository.active_runs``: only unfinished runs, in one
partition), a bounded page at a time. A stale run gets a run message
(``{"recovery": n}``), whose handler resumes it from its checkpoint, so
finished stages never run again. A run that was parked (``sk = "parked"``:
its host stopped cleanly) is resumed at once; any other stale run only
after ``grace_s`` since it started, so a run whose host has not taken the
lease yet is left alone. A run recovered more than ``max_recoveries`` times
(``sk = "recoveries"``, a counter) is marked failed with that reason, and
so is one whose pipeline cannot be loaded (by the handler).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from flowmason.kernel.errors import NotFoundError
from flowmason.kernel.model import Run, RunStatus
from flowmason.kernel.runs import DEFAULT_ORG, RunRepository
from flowmason.kernel.storage import Store

from . import leases
from .jobs import fail_run, run_message

log = logging.getLogger("flowmason.durable")

SCAN_PAGES = 50  # at most this many pages of 200 active runs per scan


def _org(ns: str) -> str:
    # the inverse of kernel.runs.namespace: "" is the default organization, "org#ID#" is ID's
    return ns[4:-1] if ns.startswith("org#") and ns.endswith("#") else DEFAULT_ORG


def stale(store: Store, repo: RunRepository, run: Run, *, grace_s: float, now: float | None = None) -> str | None:
    """Why ``run`` is stale ("parked", "expired"), or None when it is finished or someone live holds it."""
    if run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
        return None
    pk = repo.partition(run.id)
    info = leases.holder(store, pk)
    if info is not None and leases.holder_alive(info):
        return None
    if store.get(pk, "parked") is not None:
        return "parked"
    now = time.time() if now is None else now
    since = run.started_at or run.created_at or 0
    if info is None and now - since < grace_s:
        return None  # just started: its host may not have taken the lease yet
    return "expired"


def scan(store: Store, send: Callable[[dict[str, Any]], None], *, settings: leases.Settings | None = None) -> list[str]:
    """One pass over the unfinished runs: resume the stale ones; returns their ids."""
    cfg = settings or leases.settings()
    index = RunRepository(store)
    recovered: list[str] = []
    cursor = None
    for _ in range(SCAN_PAGES):
        entries, cursor = index.active_runs(limit=200, cursor=cursor)
        for ns, run_id in entries:
            repo = RunRepository(store, ns)
            try:
                run = repo.get_run(run_id)
            except NotFoundError:
                continue
            if run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
                # a final record whose index entry survived (an older writer): drop the entry
                repo.run_finished(run)
                continue
            why = stale(store, repo, run, grace_s=cfg.grace_s)
            if why is None:
                continue
            if recover(store, repo, run, send, why=why, settings=cfg):
                recovered.append(run_id)
        if not cursor:
            break
    return recovered


def recover(store: Store, repo: RunRepository, run: Run, send: Callable[[dict[str, Any]], None], *, why: str,
            settings: leases.Settings) -> bool:
    """Resume one stale run (send its message), or mark it failed after too many recoveries."""
    pk = repo.partition(run.id)
    if why == "parked":
        store.delete(pk, "parked")
        n = 0  # a clean stop is not a crash
    else:
        n = store.increment(pk, "recoveries")
        if n > settings.max_recoveries:
            fail_run(repo, run, "process_died",
                     f"the process running it stopped {n} times (the last one without releasing its lease)",
                     "a stage probably crashes its process (memory, a native library); fix it and run again")
            return False
    log.info("resuming run %s (%s, recovery %d)", run.id, why, n)
    send(run_message(_org(repo.ns), run.id, recovery=n or True))
    return True
