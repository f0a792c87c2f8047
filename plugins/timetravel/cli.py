"""`fm debug ...`: timeline, state, step, diff, replay, what-if, compare, retention, cleanup.

Every command reads the default store (``--store`` / ``FM_STORE``) through
``RunRepository``; ``--json`` prints machine-readable output, otherwise rich
tables (plain text when piped). typer and rich are imported only here.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from flowmason.kernel.errors import InputError


def _repo() -> Any:
    from flowmason.kernel.runs import RunRepository
    from flowmason.kernel.storage import open_store

    return RunRepository(open_store())


def _console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=True)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")


def _short(value: Any, width: int = 50) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def parse_assignments(items: list[str], what: str) -> dict[str, Any]:
    """``key=value`` pairs; the value is JSON when it parses as JSON, else a string."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{what} '{item}' is not KEY=VALUE", field=what, hint=f"write {what} name=value, e.g. {what} style=noir")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return out


def parse_stage_sets(items: list[str]) -> dict[str, dict[str, Any]]:
    """``--set STAGE.key=value`` -> {stage: {key: value}} (a bare key means config.key)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in parse_assignments(items, "--set").items():
        sid, dot, path = key.partition(".")
        if not dot or not path:
            raise InputError(f"--set '{key}' names no stage field", field="--set",
                             hint="write --set STAGE_ID.key=value, e.g. --set draft.prompt='Be brief'")
        out.setdefault(sid, {})[path] = value
    return out


_STATUS_STYLE = {"completed": "green", "failed": "red", "skipped": "yellow", "running": "cyan", "pending": "dim",
                 "cancelled": "magenta"}


def _state_table(state: dict[str, Any]) -> Any:
    from rich.table import Table

    snap = state["snapshot"]
    title = f"run {state['run']['id']} @ {snap['seq']}: {snap['kind']}" + (f" {snap['stage_id']}" if snap.get("stage_id") else "")
    table = Table(title=title, title_justify="left")
    for col in ("stage", "status", "ms", "input", "output"):
        table.add_column(col)
    for key, st in state["stages"].items():
        status = st.get("status", "pending")
        mark = "▶ " if key == snap.get("stage_id") else ""
        out = st.get("error", {}).get("message") if st.get("error") else st.get("output")
        table.add_row(mark + key, f"[{_STATUS_STYLE.get(status, '')}]{status}[/]",
                      f"{st['duration_ms']:.1f}" if st.get("duration_ms") is not None else "",
                      _short(st.get("input")), _short(out))
    return table


def _show_state(state: dict[str, Any]) -> None:
    con = _console()
    con.print(_state_table(state))
    usage = ", ".join(f"{k}={v:g}" for k, v in state["usage"].items()) or "none"
    con.print(f"elapsed {state['elapsed_ms']:.1f} ms   run status {state['run']['status']}   usage {usage}")


def timeline_cmd(run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List a run's snapshots (one per stage boundary)."""
    from .history import load_timeline

    tl = load_timeline(_repo(), run_id)
    if as_json:
        _print_json(tl.describe())
        return
    from rich.table import Table

    table = Table(title=f"timeline of {tl.run.id} ({tl.run.pipeline_id}, {tl.run.status.value})", title_justify="left")
    for col in ("seq", "t ms", "event", "stage"):
        table.add_column(col)
    for s in tl.snapshots:
        d = s.describe()
        label = (s.stage_id or "") + (f"[{s.iteration}]" if s.iteration and s.stage_id else "")
        if d.get("run_status"):
            label = d["run_status"]
        table.add_row(str(s.seq), f"{s.t_ms:.1f}", d["kind"], label)
    con = _console()
    con.print(table)
    expires = tl.head.get("expires_at")
    if expires:
        con.print(f"snapshots kept until {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(expires))}")


def state_cmd(run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
              seq: int = typer.Argument(..., help="Snapshot number (see `fm debug timeline`)."),
              as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The complete state of a run at one snapshot."""
    from .history import load_timeline

    state = load_timeline(_repo(), run_id).state(seq)
    if as_json:
        _print_json(state)
    else:
        _show_state(state)


def step_cmd(run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
             at: int = typer.Option(0, "--at", help="Snapshot to start at."),
             as_json: bool = typer.Option(False, "--json", help="Print each state as JSON.")) -> None:
    """Step through a run: n/next, p/prev, first, last, a snapshot number, q to quit (one per line on stdin)."""
    from .history import load_timeline

    tl = load_timeline(_repo(), run_id)
    seq = tl.snapshot(at).seq
    moves = {"n": 1, "next": 1, "": 1, "p": -1, "prev": -1, "b": -1, "back": -1}
    for _ in range(100_000):  # bounded: one command per line of input
        state = tl.state(seq)
        _print_json(state) if as_json else _show_state(state)
        if sys.stdin.isatty():
            sys.stdout.write("[n]ext [p]rev first last NUMBER [q]uit > ")
            sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            return
        cmd = line.strip().lower()
        if cmd in ("q", "quit", "exit"):
            return
        if cmd in moves:
            seq = tl.step(seq, moves[cmd])
        elif cmd == "first":
            seq = 0
        elif cmd == "last":
            seq = tl.last
        elif cmd.isdigit():
            seq = tl.snapshot(int(cmd)).seq
        else:
            sys.stderr.write(f"unknown step command {cmd!r}: use n, p, first, last, a number or q\n")


def diff_cmd(a: str = typer.Argument(..., help="First snapshot: RUN_ID@SEQ."),
             b: str = typer.Argument(..., help="Second snapshot: RUN_ID@SEQ, or SEQ for the same run."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """What changed between two snapshots (of one run or of two runs)."""
    from .history import diff_states, load_timeline, parse_ref

    repo = _repo()
    run_a, seq_a = parse_ref(a)
    run_b, seq_b = parse_ref(b, default_run=run_a)
    tl_a = load_timeline(repo, run_a)
    tl_b = tl_a if run_b == run_a else load_timeline(repo, run_b)
    diff = diff_states(tl_a.state(seq_a), tl_b.state(seq_b))
    if as_json:
        _print_json(diff)
        return
    con = _console()
    con.print(f"{diff['a']['run_id']}@{diff['a']['seq']} → {diff['b']['run_id']}@{diff['b']['seq']}  "
              f"(+{diff['elapsed_ms']:.1f} ms)")
    if diff["inputs"]:
        con.print(f"inputs: {_short(diff['inputs']['a'], 80)} → {_short(diff['inputs']['b'], 80)}")
    if not diff["stages"]:
        con.print("no stage changed")
    for key, change in diff["stages"].items():
        for fld, ab in change.items():
            con.print(f"  {key}.{fld}: {_short(ab['a'], 60)} → {_short(ab['b'], 60)}", markup=False)
    if diff["usage"]:
        con.print("usage: " + ", ".join(f"{k} {v:+g}" for k, v in diff["usage"].items()))


def _compare_table(cmp: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"{cmp['a']['id']} ({cmp['a']['status']})  vs  {cmp['b']['id']} ({cmp['b']['status']})",
                  title_justify="left")
    for col in ("stage", "A status", "B status", "A ms", "B ms", "output"):
        table.add_column(col)
    for row in cmp["stages"]:
        a, b = row["a"] or {}, row["b"] or {}
        same = "same" if row["same_output"] else f"{_short(a.get('output'), 30)} → {_short(b.get('output'), 30)}"
        table.add_row(row["stage"], a.get("status", "-"), b.get("status", "-"),
                      f"{a['duration_ms']:.1f}" if a.get("duration_ms") is not None else "",
                      f"{b['duration_ms']:.1f}" if b.get("duration_ms") is not None else "", same)
    return table


def _print_compare(cmp: dict[str, Any], word_diff: bool = True) -> None:
    from flowmason.kernel.plugins import get_plugin_manager

    con = _console()
    con.print(_compare_table(cmp))
    if word_diff and get_plugin_manager().has_plugin("promptdiff"):  # optional: left out of a subset, no word diff
        from flowmason.plugins.promptdiff import diff_values, render_rich

        for row in cmp["stages"]:
            if row["a"] and row["b"] and not row["same_output"]:
                con.print(f"[bold]{row['stage']}[/] output:")
                con.print(render_rich(diff_values(row["a"]["output"], row["b"]["output"])))


def _load_current(path: Optional[Path]) -> tuple[Any, Any]:
    """The current pipeline file, resolved as `fm run` resolves it (the runner), and the loader for
    the references inside it; (None, a loader for the working folder) without a file."""
    from flowmason.kernel.runner import Runner

    if path is None:
        return None, Runner(base=Path.cwd()).loader()
    return Runner().load(path)


def _run_replay(run_id: str, seq: int, inputs: dict, sets: dict, pipeline: Optional[Path], as_json: bool) -> None:
    from .replay import compare_runs, replay

    repo = _repo()
    current, loader = _load_current(pipeline)
    plan, run = replay(repo, run_id, seq, inputs=inputs or None, stage_changes=sets or None,
                       current=current, loader=loader)
    cmp = compare_runs(repo, plan.source.run.id, run.id)
    if as_json:
        _print_json({"run_id": run.id, "status": run.status.value, "replay_of": plan.origin(), "rerun": plan.rerun,
                     "compare": cmp})
        return
    con = _console()
    con.print(f"replayed {plan.source.run.id} from snapshot {seq} as {run.id} ({run.status.value}); "
              f"kept {len(plan.resume)} stage result(s), re-ran {len(plan.rerun)}: {', '.join(plan.rerun) or 'none'}")
    if run.error:
        con.print(f"[red]error:[/] {run.error.get('message')}")
    _print_compare(cmp)


def replay_cmd(run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
               seq: int = typer.Argument(..., help="Snapshot to replay from."),
               pipeline: Optional[Path] = typer.Option(None, "--pipeline", "-p",
                                                      help="The current pipeline file: refuse if it changed since the run."),
               as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Rerun a run from a snapshot; stages settled before it are not re-run."""
    _run_replay(run_id, seq, {}, {}, pipeline, as_json)


def what_if_cmd(run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
                seq: int = typer.Argument(..., help="Snapshot to replay from."),
                input_: list[str] = typer.Option([], "--input", "-i", help="Changed input: KEY=VALUE (JSON or text)."),
                sets: list[str] = typer.Option([], "--set", "-s", help="Changed stage field: STAGE.key=VALUE."),
                as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Replay from a snapshot with changed inputs or stage config; compare both runs side by side."""
    inputs = parse_assignments(input_, "--input")
    stage_sets = parse_stage_sets(sets)
    if not inputs and not stage_sets:
        raise InputError("what-if needs at least one --input or --set", field="--input",
                         hint="e.g. fm debug what-if RUN 3 --input style=noir --set draft.prompt='Be brief'")
    _run_replay(run_id, seq, inputs, stage_sets, None, as_json)


def compare_cmd(run_a: str = typer.Argument(..., help="First run id (or a unique prefix, a short id, last)."),
                run_b: str = typer.Argument(..., help="Second run id."),
                as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Two runs side by side, stage by stage, with word diffs of changed outputs."""
    from .replay import compare_runs

    cmp = compare_runs(_repo(), run_a, run_b)
    _print_json(cmp) if as_json else _print_compare(cmp)


def retention_cmd(run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
                  days: float = typer.Option(..., "--days", min=0.0, help="Keep the snapshots this many days from now.")) -> None:
    """Change how long a run's snapshots are kept."""
    from .retention import set_retention

    expires = set_retention(_repo(), run_id, days * 86400)
    sys.stdout.write(f"snapshots kept until {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(expires))}\n")


def cleanup_cmd() -> None:
    """Remove expired snapshots from the store now (reads already ignore them)."""
    from flowmason.kernel.storage import open_store

    from .retention import purge

    n = purge(open_store())
    sys.stdout.write("the store removes expired items itself (TTL)\n" if n is None else f"removed {n} expired item(s)\n")


def register_commands(app: Any) -> None:
    debug = typer.Typer(help="Time travel: snapshots, state, diff, replay and what-if runs.", no_args_is_help=True)
    debug.command("timeline")(timeline_cmd)
    debug.command("state")(state_cmd)
    debug.command("step")(step_cmd)
    debug.command("diff")(diff_cmd)
    debug.command("replay")(replay_cmd)
    debug.command("what-if")(what_if_cmd)
    debug.command("compare")(compare_cmd)
    debug.command("retention")(retention_cmd)
    debug.command("cleanup")(cleanup_cmd)
    app.add_typer(debug, name="debug")
