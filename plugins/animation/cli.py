"""`fm export RUN_ID --format html|json|markdown|mermaid|svg`, `fm play RUN_ID`, `fm watch RUN_ID`.

(Named so they do not clash with the `fm runs` group.) Exporters come from
the registry, so a format another plugin registers is offered too.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from flowmason.kernel.errors import ExitCode, InputError


def _repo() -> Any:
    from flowmason.kernel.runs import RunRepository
    from flowmason.kernel.storage import open_store

    return RunRepository(open_store())


def export_cmd(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    fmt: str = typer.Option("html", "--format", "-f", help="html, json, markdown, mermaid, svg (or a plugin's format)."),
    out: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write (default: stdout)."),
    pipeline: Optional[Path] = typer.Option(None, "--pipeline", "-p", help="Pipeline file for the graph "
                                            "(default: the definition time travel recorded with the run)."),
) -> None:
    """Export a run: an animated HTML page, JSON frames, a Markdown report, Mermaid or SVG."""
    from flowmason.kernel.plugins import get_registry

    from .exporters import load_run

    exporters = get_registry().exporters
    export = exporters.get(fmt)
    if export is None:
        raise InputError(f"unknown export format '{fmt}'", field="--format",
                             hint=f"use one of: {', '.join(sorted(exporters))}")
    run, stages, pipe = load_run(_repo(), run_id, pipeline)
    data = export(run, stages, pipe)
    if out is None:
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
        return
    out.write_bytes(data) if isinstance(data, bytes) else out.write_text(data, encoding="utf-8")
    sys.stderr.write(f"wrote {out} ({fmt}, {len(stages)} stage results)\n")


def play_cmd(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    speed: float = typer.Option(1.0, "--speed", help="0.5, 1, 2 or 4."),
    start: float = typer.Option(0.0, "--from", help="Start at this many ms into the run."),
) -> None:
    """Replay a recorded run's animation in the terminal."""
    from rich.live import Live

    from .exporters import load_run
    from .frames import Player, tracks_from_results
    from .view import run_table

    run, stages, pipe = load_run(_repo(), run_id)
    anim = tracks_from_results(run, stages, pipe)
    player = Player(anim, speed=speed)
    player.seek(start)
    player.play()
    with Live(run_table(anim, player.frame()), refresh_per_second=20, transient=False) as live:
        for _ in range(1_000_000):  # bounded; ends when the player reaches the end
            frame = player.frame()
            live.update(run_table(anim, frame))
            if not player.playing:
                break
            time.sleep(0.05)


def watch_cmd(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    interval: float = typer.Option(0.5, "--interval", min=0.05, help="Seconds between polls of the store."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Give up after this many seconds."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines: each settled stage, then the finished run."),
) -> None:
    """Follow a live run until it ends (polls the store); exit code 1 if it failed."""
    from .view import watch

    status = watch(_repo(), run_id, interval=interval, timeout=timeout, as_json=as_json)
    if status not in ("completed",):
        raise typer.Exit(ExitCode.FAILED)


def register_commands(app: Any) -> None:
    app.command("export")(export_cmd)
    app.command("play")(play_cmd)
    app.command("watch")(watch_cmd)
