"""Live progress for `fm run`: a rich table on a terminal, plain lines when piped.

Both are executor listeners (``listener(kind, run, stage, data)``) and
write to stderr, so stdout carries only the result and stays pipeable.
"""
from __future__ import annotations

import sys
import time
from typing import Any

_MARK = {"stage.finished": "ok", "stage.failed": "FAILED", "stage.skipped": "skipped", "stage.cancelled": "cancelled"}


def _label(stage: Any, data: Any) -> str:
    it = getattr(data, "iteration", None)
    return f"{stage.id}[{it}]" if it else stage.id


class PlainProgress:
    """One line per stage event: `[  12.3 ms] ok       fetch`."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr

    def __call__(self, kind: str, run: Any, stage: Any, data: Any) -> None:
        w = self.stream.write
        if kind == "run.started":
            w(f"run {run.id} started: {run.pipeline_name}\n")
        elif kind in _MARK and stage is not None:
            ms = getattr(data, "duration_ms", None) or 0.0
            extra = ""
            if kind == "stage.failed" and getattr(data, "error", None):
                extra = f"  {data.error.get('message', '')}"
            elif kind == "stage.skipped" and getattr(data, "error", None):
                extra = f"  ({data.error.get('message', '')})"
            w(f"[{ms:9.1f} ms] {_MARK[kind]:<9} {_label(stage, data)}{extra}\n")
        elif kind == "stage.retry" and stage is not None:
            w(f"[   retry   ] attempt {data['attempt']} of {stage.id} failed: {data['error']}; retrying in {data['delay_s']:.2f}s\n")
        elif kind == "stage.log" and stage is not None:
            w(f"[    log    ] {stage.id}: {data.get('level', 'info')}: {data.get('message')}\n")
        elif kind == "stage.token" and stage is not None:
            pass  # streamed text is shown by the rich view only; plain output stays line-oriented
        elif kind == "run.finished":
            w(f"run {run.id} {run.status.value} in {run.duration_ms or 0:.1f} ms\n")
        self.stream.flush()


class RichProgress:
    """A live table: one row per stage with status, duration, and streaming tokens."""

    def __init__(self, pipeline: Any) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        self.rows: dict[str, list[Any]] = {s.id: ["pending", None, ""] for s in pipeline.stages}
        self.started = time.perf_counter()
        self.tokens: dict[str, str] = {}
        self.live = Live(self._table(), console=self.console, refresh_per_second=12, transient=False)

    def _table(self) -> Any:
        from rich.table import Table

        colours = {"ok": "green", "running": "yellow", "FAILED": "red", "skipped": "dim", "pending": "dim", "cancelled": "magenta"}
        t = Table(box=None, show_header=True, header_style="bold")
        t.add_column("stage")
        t.add_column("status")
        t.add_column("time", justify="right")
        t.add_column("")
        for sid, (status, ms, note) in self.rows.items():
            c = colours.get(status, "white")
            t.add_row(sid, f"[{c}]{status}[/{c}]", f"{ms:.1f} ms" if ms is not None else "", note[-80:])
        return t

    def __enter__(self) -> "RichProgress":
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.update(self._table())
        self.live.__exit__(*exc)

    def __call__(self, kind: str, run: Any, stage: Any, data: Any) -> None:
        if stage is None:
            return
        row = self.rows.setdefault(stage.id, ["pending", None, ""])
        if kind == "stage.started":
            row[0] = "running"
        elif kind in _MARK:
            row[0] = _MARK[kind]
            row[1] = getattr(data, "duration_ms", None)
            if kind == "stage.failed" and getattr(data, "error", None):
                row[2] = str(data.error.get("message", ""))
            it = getattr(data, "iteration", None)
            if it is not None:
                row[0] = "running"
                row[2] = f"iteration {it} {_MARK[kind]}"
        elif kind == "stage.token":
            self.tokens[stage.id] = (self.tokens.get(stage.id, "") + str(data))[-200:]
            row[2] = self.tokens[stage.id].replace("\n", " ")
        elif kind == "stage.retry":
            row[2] = f"retry {data['attempt']}: {data['error']}"
        self.live.update(self._table())
