"""`fm runs`: the list of recorded runs (a table with filters), one run in detail, and pruning.

    fm runs [--status S] [--pipeline P] [--since 2h] [--json]    newest first
    fm runs show ID [--stage S] [--status S] [--full] [--json]   a summary first, then the stages
    fm runs prune --older-than 30d [--keep-failed] [--dry-run]   delete old finished runs
    fm runs resume ID                                            (resume.py)

A run id can be given whole, as a unique prefix, as a unique prefix of its
short id (the column `fm runs` shows) or as ``last``: ``RunRepository.find_run``
resolves it for every command. Tables are rich tables on stdout (colours on
a terminal, none when piped or with NO_COLOR); ``--json`` prints the data.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any, Optional

import typer

from flowmason.kernel.errors import InputError

from .commands import _err, _out, _recorder

STATUS_STYLE = {"completed": "green", "failed": "red", "cancelled": "magenta", "running": "yellow",
                "pending": "dim", "skipped": "dim"}
RUN_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
STAGE_STATUSES = ("pending", "running", "completed", "failed", "skipped", "cancelled")
_SLOWEST = 5
_ERRORS_SHOWN = 10


def _console() -> Any:
    from rich.console import Console

    # piped: wide enough that a table row stays one line for grep and awk
    return Console(width=None if sys.stdout.isatty() else 400, soft_wrap=not sys.stdout.isatty())


def _fmt_time(ts: float | None) -> str:
    if not ts:
        return "-"
    import datetime as dt

    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _status_arg(status: Optional[str], allowed: tuple[str, ...], option: str = "--status") -> Optional[str]:
    if status is None:
        return None
    value = status.strip().lower()
    if value not in allowed:
        raise InputError(f"{option} {status!r} is not a status", field=option, hint=f"use one of: {', '.join(allowed)}")
    return value


def fmt_usage(usage: dict[str, Any] | None) -> str:
    """``480 in / 24 out tokens, 4 calls, $0.000086`` (empty without usage); a local model costs $0."""
    if not usage:
        return ""
    parts = []
    if usage.get("input_tokens") is not None or usage.get("output_tokens") is not None:
        parts.append(f"{int(usage.get('input_tokens') or 0)} in / {int(usage.get('output_tokens') or 0)} out tokens")
    if usage.get("calls"):
        parts.append(f"{int(usage['calls'])} call(s)")
    if usage.get("cost_usd") is not None:
        parts.append(fmt_cost(usage["cost_usd"]))
    return ", ".join(parts)


def fmt_cost(cost: float | None) -> str:
    if not cost:
        return "$0"
    return f"${cost:.6f}".rstrip("0") if cost < 0.01 else f"${cost:.2f}"


def runs_list(
    pipeline: Optional[str] = typer.Option(None, "--pipeline", "-p", help="Only runs of this pipeline id."),
    status: Optional[str] = typer.Option(None, "--status", "-s", help="Only runs with this status: " + ", ".join(RUN_STATUSES) + "."),
    since: Optional[str] = typer.Option(None, "--since", help="Only runs made since: an age (2h, 7d) or a date (2026-12-01)."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000, help="At most this many runs."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summaries as JSON."),
) -> None:
    """List recorded runs, newest first."""
    from flowmason.kernel.retention import parse_since
    from flowmason.kernel.runs import short_id

    from .resume import mark_stale, stale_hint

    status = _status_arg(status, RUN_STATUSES)
    after = parse_since(since) if since else None
    repo = _recorder(True)
    items, _ = repo.list_runs(limit=limit, pipeline_id=pipeline, status=status, since=after)
    mark_stale(repo, items)
    for item in items:
        item["short_id"] = short_id(item["id"])
    if as_json:
        _out(json.dumps(items, indent=2, default=str))
        return
    if not items:
        filters = [f"{opt} {val}" for opt, val in (("--pipeline", pipeline), ("--status", status), ("--since", since)) if val]
        if filters:
            _err(f"no runs match {' '.join(filters)}; `fm runs` lists them all")
        else:
            _err("no runs recorded yet; `fm run PIPELINE` records one")
        return
    from rich.table import Table

    rows = []
    for r in items:
        st = r["status"]
        rows.append([r["short_id"], r.get("pipeline_id") or "", st, _fmt_time(r.get("started_at") or r.get("created_at")),
                     f"{r['duration_ms']:.1f} ms" if r.get("duration_ms") is not None else "-",
                     stale_hint(r).strip() or ((r.get("error") or {}).get("message") or "" if st == "failed" else "")])
    heads = ("id", "pipeline", "status", "started", "duration")
    console = _console()
    # every column whole, one line per run: only the trailing note is cut to what the terminal has left
    fixed = sum(max(len(h), *(len(row[i]) for row in rows)) + 2 for i, h in enumerate(heads))
    room = max(20, console.width - fixed - 1)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in heads:
        table.add_column(col, justify="right" if col == "duration" else "left", no_wrap=True)
    table.add_column("", no_wrap=True)
    for row in rows:
        st = row[2]
        table.add_row(*row[:2], f"[{STATUS_STYLE.get(st, '')}]{st}[/]", *row[3:5], _short(" ".join(row[5].split()), room))
    console.print(table)


def stage_summary(stages: list[Any]) -> dict[str, Any]:
    """Counts by status, the slowest stages and the errors, for the top of `fm runs show`."""
    counts: dict[str, int] = {}
    for s in stages:
        st = getattr(s.status, "value", s.status)
        counts[st] = counts.get(st, 0) + 1
    slowest = sorted((s for s in stages if s.duration_ms), key=lambda s: -(s.duration_ms or 0))[:_SLOWEST]
    errors = [s for s in stages if s.error and getattr(s.status, "value", s.status) == "failed"]
    return {
        "counts": counts,
        "slowest": [{"stage": _label(s), "duration_ms": s.duration_ms} for s in slowest],
        "errors": [{"stage": _label(s), "message": (s.error or {}).get("message")} for s in errors],
    }


def _label(s: Any) -> str:
    return f"{s.stage_id}[{s.iteration}]" if s.iteration else s.stage_id


def _matches(s: Any, stage: Optional[str], status: Optional[str]) -> bool:
    if status and getattr(s.status, "value", s.status) != status:
        return False
    return not stage or s.stage_id == stage or _label(s) == stage


def runs_show(
    run_id: str = typer.Argument(..., help="Run id: whole, a unique prefix, a short id from `fm runs`, or last."),
    stage: Optional[str] = typer.Option(None, "--stage", help="Only this stage (and its loop iterations)."),
    status: Optional[str] = typer.Option(None, "--status", "-s", help="Only stages with this status: " + ", ".join(STAGE_STATUSES) + "."),
    as_json: bool = typer.Option(False, "--json", help="Print the run, the summary and the stages as JSON."),
    full: bool = typer.Option(False, "--full", help="Print whole inputs and outputs, not a preview."),
) -> None:
    """Show a run: a summary (counts by status, slowest stages, errors), then each stage's input, output and time."""
    status = _status_arg(status, STAGE_STATUSES)
    repo = _recorder(True)
    run = repo.find_run(run_id)
    stages = repo.stage_results(run.id)
    summary = stage_summary(stages)
    shown = [s for s in stages if _matches(s, stage, status)]
    if as_json:
        _out(json.dumps({"run": run.model_dump(mode="json"), "summary": summary,
                         "stages": [s.model_dump(mode="json") for s in shown]}, indent=2, default=str))
        return
    from flowmason.kernel.runs import short_id

    _out(f"run       {run.id}  (short id {short_id(run.id)})")
    _out(f"pipeline  {run.pipeline_id} ({run.pipeline_name} {run.pipeline_version})")
    _out(f"status    {run.status.value}")
    _out(f"started   {_fmt_time(run.started_at)}   duration {run.duration_ms or 0:.1f} ms")
    _out(f"inputs    {_short(run.inputs, 200) if not full else json.dumps(run.inputs, indent=2)}")
    if run.error:
        _out(f"error     {run.error.get('message')}" + (f" (stage {run.error['stage']})" if run.error.get("stage") else ""))
    if run.usage:
        _out(f"usage     {fmt_usage(run.usage)}")
    counts = ", ".join(f"{n} {st}" for st, n in sorted(summary["counts"].items(), key=lambda kv: -kv[1]))
    _out(f"stages    {counts or 'none recorded'}")
    if summary["slowest"] and len(stages) > 1:
        _out("slowest   " + ", ".join(f"{x['stage']} {x['duration_ms']:.1f} ms" for x in summary["slowest"]))
    for e in summary["errors"][:_ERRORS_SHOWN]:
        _out(f"failed    {e['stage']}: {_short(e['message'] or '', 160)}")
    if len(summary["errors"]) > _ERRORS_SHOWN:
        _out(f"          ... and {len(summary['errors']) - _ERRORS_SHOWN} more (`--status failed` lists them)")
    _out("")
    graph = run.metadata.get("graph")
    if isinstance(graph, dict) and graph and not (stage or status):
        _out("graph")
        for line in render_graph(graph, stages):
            _out(f"  {line}")
        _out("")
    if (stage or status) and not shown:
        filters = " ".join(f"{o} {v}" for o, v in (("--stage", stage), ("--status", status)) if v)
        _err(f"no stage of {run.id} matches {filters}")
    width = 10_000 if full else 60
    for s in shown:
        st = s.status.value if hasattr(s.status, "value") else s.status
        cost = f", {fmt_usage(s.usage)}" if s.usage else ""
        _out(f"{st:<10} {_label(s)}  ({s.component_type}, {s.duration_ms or 0:.1f} ms, attempts {s.attempts}{cost})")
        _out(f"    input:  {_short(s.input, width)}")
        if s.error:
            _out(f"    error:  {s.error.get('message')}")
        else:
            _out(f"    output: {_short(s.output, width)}")
    if run.status.value == "completed" and not (stage or status):
        _out("")
        _out(f"output    {_short(run.output, width)}")


def runs_prune(
    older_than: str = typer.Option(..., "--older-than", help="Delete finished runs made longer ago than this: 30d, 12h, 2w."),
    keep_failed: bool = typer.Option(False, "--keep-failed", help="Keep failed runs, however old."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be deleted."),
    as_json: bool = typer.Option(False, "--json", help="Print what was pruned as JSON."),
) -> None:
    """Delete old finished runs (never a pending or running one), then the items that expired.

    FM_RUN_RETENTION_DAYS makes runs expire by themselves instead (DynamoDB TTL on AWS).
    """
    from flowmason.kernel.retention import parse_age, prune_runs

    seconds = parse_age(older_than, "--older-than")
    repo = _recorder(True)
    report = prune_runs(repo, seconds, keep_failed=keep_failed, dry_run=dry_run)
    if as_json:
        _out(json.dumps({**report.to_dict(), "dry_run": dry_run}, indent=2))
        return
    verb = "would delete" if dry_run else "deleted"
    kept = []
    if report.kept_failed:
        kept.append(f"kept {report.kept_failed} failed")
    if report.kept_unfinished:
        kept.append(f"kept {len(report.kept_unfinished)} not finished")
    if report.expired_purged:
        kept.append(f"removed {report.expired_purged} expired item(s)")
    _out(f"{verb} {len(report.pruned)} run(s) made before {_fmt_time(report.cutoff)}"
         + (f" ({'; '.join(kept)})" if kept else ""))


_MARKS = {"completed": "✓", "failed": "✗", "skipped": "·", "cancelled": "⊘", "running": "…"}


# a 50,000-stage chain is 50,000 levels deep: past this the indent stops growing
_MAX_INDENT = 24


def render_graph(graph: dict[str, list[str]], stages: list[Any]) -> list[str]:
    """The run's stages in dependency order, indented by depth, each with its status and timing.

    Loop and try bodies show their iterations' count; a stage that never ran says so.
    Stages deeper than ``_MAX_INDENT`` levels are indented as that level; their
    ``← ...`` still names what they wait for.
    """
    by_stage: dict[str, list[Any]] = {}
    for s in stages:
        by_stage.setdefault(s.stage_id, []).append(s)
    depth = graph_depths(graph)
    position = {sid: i for i, sid in enumerate(graph)}
    order = sorted(graph, key=lambda sid: (depth[sid], position[sid]))
    indent = {sid: min(depth[sid], _MAX_INDENT) for sid in order}
    name_width = max(len(sid) + 2 * indent[sid] for sid in order) + 2
    lines = []
    for sid in order:
        results = by_stage.get(sid, [])
        main = [r for r in results if not r.iteration] or results
        status = _status_text(main[-1].status) if main else "not run"
        took = sum((r.duration_ms or 0) for r in main)
        iterations = len([r for r in results if r.iteration])
        deps = [d.replace("in:", "in ") for d in graph.get(sid) or []]
        label = "  " * indent[sid] + sid
        detail = f"{took:8.1f} ms" if main and status != "skipped" else " " * 11
        extra = f"  ×{iterations} iterations" if iterations else ""
        counts = Counter(_status_text(r.status) for r in results if r.iteration)
        if len(counts) > 1:  # say how the iterations went when they differ (a router or trycatch in a loop)
            extra += " (" + ", ".join(f"{n} {st}" for st, n in sorted(counts.items())) + ")"
        after = f"  ← {', '.join(deps)}" if deps else ""
        lines.append(f"{_MARKS.get(status, '?')} {label:<{name_width}} {status:<9} {detail}{extra}{after}")
    return lines


def _status_text(status: Any) -> str:
    return status.value if hasattr(status, "value") else str(status)


def graph_depths(graph: dict[str, list[str]]) -> dict[str, int]:
    """Each stage's longest chain of waits back to a stage that waits for nothing (0).

    A walk with an explicit stack, so a long chain does not hit the recursion
    limit; a wait back onto the current path (a loop waiting for its own body)
    is not followed.
    """
    def waits_for(sid: str) -> list[str]:
        return [d[3:] if d.startswith("in:") else d for d in graph.get(sid, [])]

    depth: dict[str, int] = {}
    for root in graph:
        if root in depth:
            continue
        path, on_path, todo = [root], {root}, [iter(waits_for(root))]
        while todo:
            for d in todo[-1]:
                if d in graph and d not in depth and d not in on_path:
                    path.append(d)
                    on_path.add(d)
                    todo.append(iter(waits_for(d)))
                    break
            else:
                todo.pop()
                sid = path.pop()
                on_path.discard(sid)
                depth[sid] = 1 + max((depth[d] for d in waits_for(sid) if d in depth), default=-1)
    return depth


def register(app: typer.Typer) -> None:
    runs = typer.Typer(help="Recorded runs: list, show, prune, resume.", invoke_without_command=True, no_args_is_help=False)

    @runs.callback(invoke_without_command=True)
    def _runs(ctx: typer.Context,
              pipeline: Optional[str] = typer.Option(None, "--pipeline", "-p", help="Only runs of this pipeline id."),
              status: Optional[str] = typer.Option(None, "--status", "-s", help="Only runs with this status."),
              since: Optional[str] = typer.Option(None, "--since", help="Only runs made since: 2h, 7d or 2026-12-01."),
              limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000, help="At most this many runs."),
              as_json: bool = typer.Option(False, "--json", help="Print the run summaries as JSON.")) -> None:
        """List recorded runs (newest first), or `fm runs show ID`."""
        if ctx.invoked_subcommand is None:
            runs_list(pipeline=pipeline, status=status, since=since, limit=limit, as_json=as_json)

    runs.command("list")(runs_list)
    runs.command("show")(runs_show)
    runs.command("prune")(runs_prune)
    from .resume import register as register_resume

    register_resume(runs)
    app.add_typer(runs, name="runs")
