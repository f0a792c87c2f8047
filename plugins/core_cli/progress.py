"""Live progress for `fm run`: a rich table on a terminal, plain lines when piped.

Both are executor listeners (``listener(kind, run, stage, data)``) and
write to stderr, so stdout carries only the result and stays pipeable.
Both show the same things: the run id when it starts, every stage's status
and time, its tokens and cost when it called a model (a local model costs
$0, see plugins/providers/base.py), logger messages, and the final status
with the total time. The live table redraws from ``_table`` on every
refresh, so a running stage's time and the run's total tick while it waits.
"""
from __future__ import annotations

import sys
import time
from typing import Any

_MARK = {"stage.finished": "ok", "stage.failed": "FAILED", "stage.skipped": "skipped", "stage.cancelled": "cancelled"}


def _label(stage: Any, data: Any) -> str:
    it = getattr(data, "iteration", None)
    return f"{stage.id}[{it}]" if it else stage.id


def usage_note(usage: Any) -> str:
    """``480→24 tokens $0.000086`` for a stage that called a model; empty otherwise."""
    if not isinstance(usage, dict) or not (usage.get("input_tokens") or usage.get("output_tokens")):
        return ""
    from .runs_cli import fmt_cost

    return f"{int(usage.get('input_tokens') or 0)}→{int(usage.get('output_tokens') or 0)} tokens {fmt_cost(usage.get('cost_usd'))}"


def _short_id(run: Any) -> str:
    from flowmason.kernel.runs import short_id

    return short_id(run.id)


def finished_line(run: Any) -> str:
    """``run run_… (f856c6fd) completed in 21.8 ms, 480→24 tokens $0``."""
    usage = usage_note(run.usage)
    return (f"run {run.id} ({_short_id(run)}) {run.status.value} in {run.duration_ms or 0:.1f} ms"
            + (f", {usage}" if usage else ""))


class PlainProgress:
    """One line per stage event: `[  12.3 ms] ok       fetch`."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr

    def __call__(self, kind: str, run: Any, stage: Any, data: Any) -> None:
        w = self.stream.write
        if kind == "run.started":
            w(f"run {run.id} ({_short_id(run)}) started: {run.pipeline_name}\n")
        elif kind in _MARK and stage is not None:
            ms = getattr(data, "duration_ms", None) or 0.0
            extra = ""
            if kind == "stage.failed" and getattr(data, "error", None):
                extra = f"  {data.error.get('message', '')}"
            elif kind == "stage.skipped" and getattr(data, "error", None):
                extra = f"  ({data.error.get('message', '')})"
            usage = usage_note(getattr(data, "usage", None))
            w(f"[{ms:9.1f} ms] {_MARK[kind]:<9} {_label(stage, data)}{extra}" + (f"  ({usage})" if usage else "") + "\n")
        elif kind == "stage.retry" and stage is not None:
            w(f"[   retry   ] attempt {data['attempt']} of {stage.id} failed: {data['error']}; retrying in {data['delay_s']:.2f}s\n")
        elif kind == "stage.log" and stage is not None:
            w(f"[    log    ] {stage.id}: {data.get('level', 'info')}: {data.get('message')}\n")
        elif kind == "stage.token" and stage is not None:
            pass  # streamed text is shown by the rich view only; plain output stays line-oriented
        elif kind == "run.finished":
            w(finished_line(run) + "\n")
        self.stream.flush()


class RichProgress:
    """A live table: one row per stage with status, time (ticking while it runs), tokens and cost or streamed text.

    The run id is the table's title from the start; logger messages and
    retries print above the table as they come; when the run ends, stages
    that never ran say so and one line gives the final status and total time.
    """

    def __init__(self, pipeline: Any, console: Any = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console(stderr=True)
        # stage -> [status, ms, note, started perf_counter]
        self.rows: dict[str, list[Any]] = {s.id: ["pending", None, "", None] for s in pipeline.stages}
        self.started = time.perf_counter()
        self.tokens: dict[str, str] = {}
        self.iterations: dict[str, dict[str, int]] = {}  # loop body stage -> settled iterations by mark
        self.run: Any = None
        self.title = pipeline.name or pipeline.id
        self.live = Live(console=self.console, refresh_per_second=8, transient=False, get_renderable=self._table)

    def _table(self) -> Any:
        from rich.table import Table

        colours = {"ok": "green", "running": "yellow", "FAILED": "red", "skipped": "dim", "pending": "dim",
                   "not run": "dim", "cancelled": "magenta"}
        now = time.perf_counter()
        run_id = f"run {self.run.id} ({_short_id(self.run)})" if self.run is not None else "run"
        running = self.run is None or self.run.finished_at is None
        header = f"{run_id} · {self.title}" + (f" · {(now - self.started) * 1000:.0f} ms" if running else "")
        t = Table(box=None, show_header=True, header_style="bold")
        t.add_column("stage")
        t.add_column("status")
        t.add_column("time", justify="right")
        t.add_column("")
        for sid, (status, ms, note, began) in self.rows.items():
            c = colours.get(status, "white")
            if ms is None and status == "running" and began is not None:
                ms = (now - began) * 1000
            t.add_row(sid, f"[{c}]{status}[/{c}]", f"{ms:.1f} ms" if ms is not None else "", note[-80:])
        from rich.console import Group
        from rich.text import Text

        return Group(Text(header, style="bold"), t)

    def __enter__(self) -> "RichProgress":
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        for sid, row in self.rows.items():
            done = self.iterations.get(sid)
            if row[0] == "running" and done:  # a loop body: settled by its iterations, it has no result of its own
                row[0] = "FAILED" if done.get("FAILED") else "ok"
                row[2] = ", ".join(f"{n} {mark}" for mark, n in done.items()) + " iteration(s)"
            elif row[0] in ("pending", "running"):
                row[0] = "not run" if row[0] == "pending" else "cancelled"
        self.live.refresh()
        self.live.__exit__(*exc)
        if self.run is not None and self.run.finished_at is not None:
            self.console.print(finished_line(self.run), highlight=False, markup=False)

    def _above(self, text: str) -> None:
        # printed through the live console: it lands above the table, which redraws below it
        self.live.console.print(text, highlight=False, markup=False)

    def __call__(self, kind: str, run: Any, stage: Any, data: Any) -> None:
        if kind in ("run.started", "run.finished"):
            self.run = run
            return
        if stage is None:
            return
        row = self.rows.setdefault(stage.id, ["pending", None, "", None])
        if kind == "stage.started":
            row[0], row[3] = "running", time.perf_counter()
        elif kind in _MARK:
            row[0] = _MARK[kind]
            row[1] = getattr(data, "duration_ms", None)
            usage = usage_note(getattr(data, "usage", None))
            if usage:
                row[2] = usage
            if kind == "stage.failed" and getattr(data, "error", None):
                row[2] = str(data.error.get("message", ""))
            it = getattr(data, "iteration", None)
            if it is not None:
                row[0], row[1] = "running", None
                row[2] = f"iteration {it} {_MARK[kind]}"
                counts = self.iterations.setdefault(stage.id, {})
                counts[_MARK[kind]] = counts.get(_MARK[kind], 0) + 1
        elif kind == "stage.token":
            self.tokens[stage.id] = (self.tokens.get(stage.id, "") + str(data))[-200:]
            row[2] = self.tokens[stage.id].replace("\n", " ")
        elif kind == "stage.retry":
            row[2] = f"retry {data['attempt']}: {data['error']}"
            self._above(f"[retry] {stage.id}: attempt {data['attempt']} failed: {data['error']}; retrying in {data['delay_s']:.2f}s")
        elif kind == "stage.log":
            self._above(f"[log] {stage.id}: {data.get('level', 'info')}: {data.get('message')}")
