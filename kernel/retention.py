"""Run retention: prune old runs on request, and the automatic expiry of finished runs.

Two ways to keep a store from growing forever (a run is about 80 KB):

- ``prune_runs`` (``fm runs prune --older-than 30d --keep-failed``) deletes
  finished runs made before a cutoff, through ``RunRepository.delete_run``:
  never a run that is pending or running (its process may be alive, or a
  host may resume it), and never half of one (the run item and its listing
  entries go in one conditional transaction before the rest of its
  partition). Then it asks the backend to drop items that expired
  (``purge_expired``: SQLite; DynamoDB's TTL does that by itself).
- ``FM_RUN_RETENTION_DAYS`` gives every run an expiry when it finishes
  (``expires_at`` on its items, the storage contract's TTL): reads stop
  seeing it at once, SQLite removes it at the next purge, DynamoDB's TTL
  within a day or two. Failed runs get ``FM_RUN_RETENTION_FAILED_DAYS`` if
  set, so they can be kept longer for debugging.

Run ids sort by the time they were made, so "made before the cutoff" is one
range query of the listing, not a scan.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNFINISHED = ("pending", "running")


def parse_age(text: str, option: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` -> seconds; a clear error naming ``option`` otherwise."""
    m = _AGE.match(text or "")
    if not m:
        raise InputError(f"{option} {text!r} is not an age", field=option,
                         hint=f"write a number and a unit (s, m, h, d, w), e.g. {option} 30d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_since(text: str, option: str = "--since", now: float | None = None) -> float:
    """An age (``2h``: that long ago) or a date/time (``2026-12-01``, ``2026-12-01T09:30``) -> epoch seconds."""
    import datetime as dt

    if _AGE.match(text or ""):
        return (time.time() if now is None else now) - parse_age(text, option)
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{option} {text!r} is neither an age nor a date", field=option,
                         hint=f"e.g. {option} 2h, {option} 7d or {option} 2026-12-01") from None
    return when.timestamp()  # a naive time is local time, as `fm runs` shows it


@dataclass
class PruneReport:
    cutoff: float
    pruned: list[str] = field(default_factory=list)
    kept_unfinished: list[str] = field(default_factory=list)
    kept_failed: int = 0
    expired_purged: int | None = None  # items the backend dropped; None when it does that itself (TTL)

    def to_dict(self) -> dict[str, Any]:
        return {"cutoff": self.cutoff, "pruned": self.pruned, "kept_unfinished": self.kept_unfinished,
                "kept_failed": self.kept_failed, "expired_purged": self.expired_purged}


def prune_runs(repo: Any, older_than_s: float, *, keep_failed: bool = False, dry_run: bool = False,
               now: float | None = None, max_runs: int = 1_000_000) -> PruneReport:
    """Delete the finished runs of ``repo``'s namespace made more than ``older_than_s`` ago."""
    from .runs import id_floor

    cutoff = (time.time() if now is None else now) - older_than_s
    report = PruneReport(cutoff=cutoff)
    # read the candidates first, then delete: never page through a listing while removing from it
    candidates = []
    for item in repo.store.query_all(f"{repo.ns}runs", page_size=500):
        if item.sk >= id_floor(cutoff) or len(candidates) >= max_runs:
            break
        candidates.append((item.sk, item.data.get("status")))
    for run_id, status in candidates:
        if status in _UNFINISHED:
            report.kept_unfinished.append(run_id)
        elif keep_failed and status == "failed":
            report.kept_failed += 1
        elif dry_run or repo.delete_run(run_id):
            report.pruned.append(run_id)
        else:  # it changed meanwhile (resumed, or deleted by another prune)
            report.kept_unfinished.append(run_id)
    if not dry_run:
        purge = getattr(repo.store, "purge_expired", None)
        report.expired_purged = purge() if callable(purge) else None
    return report


def run_expiry(run: Any, settings: Any = None) -> float | None:
    """When a finished ``run``'s items expire under the retention settings, or None to keep it."""
    from .settings import get_settings

    settings = settings or get_settings()
    status = getattr(run.status, "value", run.status)
    if status in _UNFINISHED:
        return None
    days = settings.run_retention_days
    if status == "failed" and settings.run_retention_failed_days is not None:
        days = settings.run_retention_failed_days
    if days is None:
        return None
    return (run.finished_at or time.time()) + days * 86400
