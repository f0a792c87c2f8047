"""The run view in the terminal: a table of stages with status, progress and time; `fm watch`.

``watch`` follows a live run by polling the store: the run record and its
stage results (written by the executor's recorder after each stage) and,
when time travel is on, the snapshot log, which also shows the stages that
are running now. On a terminal it redraws a rich table; piped, it prints
one line per stage as it settles and one for the run's end.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

from flowmason.kernel.errors import FlowMasonError

from .frames import Animation

STYLE = {"completed": "green", "failed": "red", "skipped": "yellow", "running": "cyan", "pending": "dim",
         "cancelled": "magenta"}
TERMINAL = ("completed", "failed", "cancelled")


def run_table(anim: Animation, frame: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"{anim.pipeline_id} · run {anim.run_id} · {frame['t_ms']:.0f}/{anim.duration_ms:.0f} ms "
                        f"· {frame['progress'] * 100:.0f}%", title_justify="left")
    for col in ("stage", "status", "progress", "time"):
        table.add_column(col)
    for tr in anim.tracks:
        st = frame["stages"][tr.stage_id]
        bar = "█" * int(st["progress"] * 12) + "·" * (12 - int(st["progress"] * 12))
        table.add_row(tr.label or tr.stage_id, f"[{STYLE.get(st['status'], '')}]{st['status']}[/]", bar,
                      f"{st['duration_ms']:.1f} ms" if st["status"] != "pending" else "")
    return table


def _running(repo: Any, run_id: str) -> set[str]:
    """Stages started and not yet settled, from the time-travel log (empty when it is not there yet)."""
    try:
        from flowmason.plugins.timetravel.history import load_timeline
    except ImportError:
        return set()
    try:
        tl = load_timeline(repo, run_id)
    except FlowMasonError:
        return set()
    running: set[str] = set()
    for s in tl.snapshots:
        if s.stage_id is None:
            continue
        if s.describe()["kind"] == "stage.started":
            running.add(s.stage_id)
        else:
            running.discard(s.stage_id)
    return running


def poll(repo: Any, run_id: str) -> tuple[Any, list[Any], set[str]]:
    run = repo.get_run(run_id)
    return run, repo.stage_results(run.id), _running(repo, run.id) if run.status.value == "running" else set()


def watch(repo: Any, run_ref: str, *, interval: float = 0.5, timeout: float | None = None,
          out: Any = None, sleep: Callable[[float], None] = time.sleep) -> str:
    """Follow a run until it ends; returns its final status."""
    out = out or sys.stdout
    run = repo.find_run(run_ref)
    deadline = None if timeout is None else time.monotonic() + timeout
    tty = hasattr(out, "isatty") and out.isatty()
    seen: set[str] = set()
    live = None
    if tty:
        from rich.console import Console
        from rich.live import Live

        live = Live(console=Console(file=out), refresh_per_second=8)
        live.start()
    try:
        for _ in range(10_000_000):  # bounded; ends with the run or the timeout
            run, stages, running = poll(repo, run.id)
            if live is not None:
                live.update(_live_table(run, stages, running))
            else:
                for r in stages:
                    key = f"{r.stage_id}[{r.iteration}]" if r.iteration else r.stage_id
                    if key not in seen:
                        seen.add(key)
                        out.write(f"{r.status.value:<10} {key} ({r.duration_ms or 0:.1f} ms)\n")
                out.flush()
            status = run.status.value
            if status in TERMINAL:
                if live is None:
                    extra = f": {run.error.get('message')}" if run.error else ""
                    out.write(f"run {run.id} {status} in {run.duration_ms or 0:.1f} ms{extra}\n")
                    out.flush()
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise FlowMasonError(f"run '{run.id}' is still {status} after {timeout:g} s", field="--timeout",
                                     hint="watch again, or raise --timeout")
            sleep(interval)
    finally:
        if live is not None:
            live.stop()
    return run.status.value


def _live_table(run: Any, stages: list[Any], running: set[str]) -> Any:
    from .frames import Track, tracks_from_results

    anim = tracks_from_results(run, stages, None)
    now = (time.time() - (run.started_at or time.time())) * 1000
    known = {t.stage_id for t in anim.tracks}
    for sid in sorted(running - known):
        anim.tracks.append(Track(sid, start_ms=max(now - 1, 0), status="running"))
    anim.duration_ms = max(anim.duration_ms, now)
    return run_table(anim, anim.frame_at(now))
