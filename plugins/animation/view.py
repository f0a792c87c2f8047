"""The run view in the terminal: a table of stages with status, progress and time; `fm watch`.

``watch`` follows a live run by polling the store: the run record and its
stage results, which the executor's recorder writes as each stage settles.
On a terminal it redraws a rich table; piped, it prints one line per stage
as it settles and one for the run's end.
"""
from __future__ import annotations

import json
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


def poll(repo: Any, run_id: str) -> tuple[Any, list[Any]]:
    run = repo.get_run(run_id)
    return run, repo.stage_results(run.id)


def watch(repo: Any, run_ref: str, *, interval: float = 0.5, timeout: float | None = None,
          out: Any = None, sleep: Callable[[float], None] = time.sleep, as_json: bool = False) -> str:
    """Follow a run until it ends; returns its final status.

    ``as_json``: one JSON object per line, each settled stage result as it
    appears and then ``{"run": ...}`` with the finished run.
    """
    out = out or sys.stdout
    run = repo.find_run(run_ref)
    deadline = None if timeout is None else time.monotonic() + timeout
    tty = hasattr(out, "isatty") and out.isatty() and not as_json
    seen: set[str] = set()
    live = None
    if tty:
        from rich.console import Console
        from rich.live import Live

        live = Live(console=Console(file=out), refresh_per_second=8)
        live.start()
    try:
        for _ in range(10_000_000):  # bounded; ends with the run or the timeout
            run, stages = poll(repo, run.id)
            if live is not None:
                live.update(_live_table(run, stages))
            else:
                for r in stages:
                    key = f"{r.stage_id}[{r.iteration}]" if r.iteration else r.stage_id
                    if key not in seen:
                        seen.add(key)
                        out.write(json.dumps({"stage": r.model_dump(mode="json")}, default=str) + "\n" if as_json
                                  else f"{r.status.value:<10} {key} ({r.duration_ms or 0:.1f} ms)\n")
                out.flush()
            status = run.status.value
            if status in TERMINAL:
                if as_json:
                    out.write(json.dumps({"run": run.model_dump(mode="json")}, default=str) + "\n")
                elif live is None:
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


def _live_table(run: Any, stages: list[Any]) -> Any:
    from .frames import tracks_from_results

    anim = tracks_from_results(run, stages, None)
    now = (time.time() - (run.started_at or time.time())) * 1000
    anim.duration_ms = max(anim.duration_ms, now)
    return run_table(anim, anim.frame_at(now))
