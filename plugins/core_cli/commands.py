"""Implementations of `fm run`, `fm validate`, `fm schema`, `fm plugins`, `fm runs`."""
from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from flowmason.kernel.errors import FlowMasonError, InputError, PipelineValidationError


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2 if sys.stdout.isatty() else None, default=str, ensure_ascii=False)


def parse_inputs(inline: str | None, path: Path | None) -> dict[str, Any]:
    """`--input '{...}'`, `--input @file.json` or `--input-file file.json`."""
    if inline and inline.startswith("@"):
        path, inline = Path(inline[1:]), None
    source = "--input"
    if path is not None:
        from flowmason.kernel.jsonfile import read_json

        source = str(path)
        value = read_json(path, error=InputError, what="input file", field="input", empty={})
    elif inline is None or not inline.strip():
        return {}
    else:
        try:
            value = json.loads(inline)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                field="input", hint="""pass a JSON object, e.g. --input '{"topic": "owls"}'""",
            ) from None
    if not isinstance(value, dict):
        raise InputError(f"{source} must be a JSON object, got {type(value).__name__}", field="input",
                         hint="""wrap the value in an object, e.g. {"items": [...]}""")
    return value


def load_resolved(path: Path) -> Any:
    """Load a pipeline file the way the runner does: inheritance applied, references next to it."""
    from flowmason.kernel.runner import Runner

    return Runner().load(path)


def _recorder(enabled: bool) -> Any:
    if not enabled:
        return None
    from flowmason.kernel.runs import RunRepository
    from flowmason.kernel.storage import open_store

    return RunRepository(open_store())


def _record_invalid(recorder: Any, pipeline: Any, inputs: dict, exc: FlowMasonError) -> None:
    """A run that could not start is still recorded as failed, with its error."""
    if recorder is None:
        return
    import time

    from flowmason.kernel.model import Run, RunStatus

    now = time.time()
    run = Run(pipeline_id=pipeline.key, pipeline_name=pipeline.name, pipeline_version=pipeline.version,
              inputs=inputs, status=RunStatus.FAILED, error=exc.to_dict(), started_at=now, finished_at=now, duration_ms=0.0)
    recorder.run_finished(run)
    _err(f"run {run.id} recorded as failed")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def run_command(
    pipeline_path: Path = typer.Argument(..., help="The .pipeline.json file to run."),
    input: Optional[str] = typer.Option(
        None, "--input", "-i",
        help="Inputs as a JSON object, or @file.json. Default: the file's sample_input or example_input, if any."),
    input_file: Optional[Path] = typer.Option(None, "--input-file", help="Read inputs from a JSON file."),
    record: bool = typer.Option(True, "--record-run/--no-record-run", help="Record the run in the store (default on)."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-c", min=1, help="At most this many stages at once."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole run record as JSON, not just the output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    cassette_record: Optional[Path] = typer.Option(None, "--record", help="Save every model call to this cassette file."),
    cassette_replay: Optional[Path] = typer.Option(None, "--replay", help="Answer model calls from this cassette file."),
) -> None:
    """Run a pipeline and print its output."""
    from flowmason.kernel.model import RunStatus
    from flowmason.kernel.runner import Runner

    from flowmason.kernel.settings import set_from_option

    if cassette_record:
        set_from_option("FM_RECORD", str(cassette_record), "--record")
    if cassette_replay:
        set_from_option("FM_REPLAY", str(cassette_replay), "--replay")
    inputs = parse_inputs(input, input_file)
    runner = Runner(record=record, max_concurrency=concurrency)
    pipeline, loader = runner.load(pipeline_path)
    suggested = pipeline.suggested_input() if input is None and input_file is None else None
    if suggested is not None:
        key, inputs = suggested
        _err(f"no --input given: using the pipeline's {key} {json.dumps(inputs, ensure_ascii=False)[:200]}")
    try:
        plan = runner.compile(pipeline)
    except PipelineValidationError as exc:
        _record_invalid(runner.recorder, pipeline, inputs, exc)
        exc.exit_code = 2
        raise
    except FlowMasonError as exc:  # abstract
        _record_invalid(runner.recorder, pipeline, inputs, exc)
        raise
    recorder = runner.recorder
    listeners: list[Any] = []
    live = None
    if not quiet:
        if sys.stderr.isatty():
            from .progress import RichProgress

            live = RichProgress(pipeline)
            listeners.append(live)
        else:
            from .progress import PlainProgress

            listeners.append(PlainProgress())
    ex = runner.execution(plan, inputs, listeners=listeners, loader=loader)

    async def go() -> Any:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, ex.cancel)
            loop.add_signal_handler(signal.SIGTERM, ex.cancel)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            pass
        return await ex.execute()

    error: FlowMasonError | None = None
    try:
        if live is not None:
            with live:
                asyncio.run(go())
        else:
            asyncio.run(go())
    except FlowMasonError as exc:
        error = exc
    run = ex.run
    if as_json:
        _out(_dumps(run.model_dump(mode="json")))
    elif run.status is RunStatus.COMPLETED:
        _out(_dumps(run.output) if not isinstance(run.output, str) else run.output)
    for warning in run.metadata.get("warnings", []):
        _err(f"warning: {warning}")
    if error is not None:
        if recorder is not None:
            _err(f"run {run.id} recorded as {run.status.value}; `fm runs show {run.id}` for details")
        raise error


def validate_command(
    paths: list[Path] = typer.Argument(..., help="Pipeline files to check."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable report."),
) -> None:
    """Check pipelines: components, references, cycles, reachability, configs. Non-zero exit on any problem."""
    from flowmason.kernel.runner import Runner

    report = []
    bad = 0
    for path in paths:
        try:
            runner = Runner()
            pipeline, _ = runner.load(path)
            plan = runner.compile(pipeline, runnable=False)
            report.append({"file": str(path), "ok": True, "stages": len(pipeline.stages), "warnings": plan.warnings, "problems": []})
        except PipelineValidationError as exc:
            bad += 1
            report.append({"file": str(path), "ok": False, "problems": [p.to_dict() for p in exc.problems],
                           "text": [str(p) for p in exc.problems]})
        except FlowMasonError as exc:
            bad += 1
            report.append({"file": str(path), "ok": False, "problems": [exc.to_dict()], "text": [str(exc)]})
    if as_json:
        _out(json.dumps(report, indent=2))
    else:
        for entry in report:
            if entry["ok"]:
                _out(f"ok      {entry['file']} ({entry['stages']} stages)")
                for w in entry["warnings"]:
                    _out(f"        warning: {w}")
            else:
                _out(f"INVALID {entry['file']}")
                for line in entry["text"]:
                    _out(f"        {line}")
    if bad:
        raise typer.Exit(2)


def schema_command(
    component: Optional[str] = typer.Option(None, "--component", help="Print one component's config schema instead."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file."),
) -> None:
    """Export the JSON Schema of .pipeline.json files (for editors) or of one component's config."""
    from flowmason.kernel.model import Pipeline
    from flowmason.kernel.plugins import get_registry

    reg = get_registry()
    if component:
        comp = reg.component(component)
        doc = comp.describe()
    else:
        doc = Pipeline.model_json_schema()
        doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        doc["title"] = "FlowMason pipeline"
        stage = doc.get("$defs", {}).get("Stage")
        if stage:
            stage["properties"]["component_type"]["examples"] = sorted(reg.components)
    text = json.dumps(doc, indent=2)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        _err(f"wrote {output}")
    else:
        _out(text)


def plugins_command(as_json: bool = typer.Option(False, "--json")) -> None:
    """List loaded plugins, where they come from, the hooks each implements and what they register."""
    from flowmason.kernel.plugins import describe_plugins, get_registry

    reg = get_registry().load_all()
    plugins = describe_plugins()
    for p in plugins:
        p["registers"] = sorted(f"{kind}:{name}" for (kind, name), origin in reg.origin.items() if origin == p["name"])
    if as_json:
        _out(json.dumps(plugins, indent=2))
        return
    for p in plugins:
        _out(f"{p['name']}  ({p['source']}, {p['module']})")
        _out(f"    hooks: {', '.join(p['hooks']) or '-'}")
        if p["registers"]:
            _out(f"    registers: {', '.join(p['registers'])}")


def _fmt_time(ts: float | None) -> str:
    if not ts:
        return "-"
    import datetime as dt

    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def runs_list(
    pipeline: Optional[str] = typer.Option(None, "--pipeline", "-p", help="Only runs of this pipeline id."),
    status: Optional[str] = typer.Option(None, "--status", help="Only runs with this status."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List recorded runs, newest first."""
    from .resume import mark_stale, stale_hint

    repo = _recorder(True)
    items, _ = repo.list_runs(limit=limit, pipeline_id=pipeline, status=status)
    mark_stale(repo, items)
    if as_json:
        _out(json.dumps(items, indent=2, default=str))
        return
    if not items:
        _err("no runs recorded yet; `fm run PIPELINE` records one")
        return
    _out(f"{'run id':<32} {'pipeline':<24} {'status':<10} {'started':<19} {'duration':>10}")
    for r in items:
        dur = f"{r['duration_ms']:.1f} ms" if r.get("duration_ms") is not None else "-"
        _out(f"{r['id']:<32} {_short(r.get('pipeline_id') or '', 24):<24} {r['status']:<10} {_fmt_time(r.get('started_at')):<19} {dur:>10}"
             + stale_hint(r))


def runs_show(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    as_json: bool = typer.Option(False, "--json"),
    full: bool = typer.Option(False, "--full", help="Print whole inputs and outputs, not a preview."),
) -> None:
    """Show a run and each stage's input, output, duration and status."""
    repo = _recorder(True)
    run = repo.find_run(run_id)
    stages = repo.stage_results(run.id)
    if as_json:
        _out(json.dumps({"run": run.model_dump(mode="json"), "stages": [s.model_dump(mode="json") for s in stages]},
                        indent=2, default=str))
        return
    _out(f"run       {run.id}")
    _out(f"pipeline  {run.pipeline_id} ({run.pipeline_name} {run.pipeline_version})")
    _out(f"status    {run.status.value}")
    _out(f"started   {_fmt_time(run.started_at)}   duration {run.duration_ms or 0:.1f} ms")
    _out(f"inputs    {_short(run.inputs, 200) if not full else json.dumps(run.inputs, indent=2)}")
    if run.error:
        _out(f"error     {run.error.get('message')}" + (f" (stage {run.error['stage']})" if run.error.get("stage") else ""))
    if run.usage:
        _out(f"usage     {json.dumps(run.usage)}")
    _out("")
    graph = run.metadata.get("graph")
    if isinstance(graph, dict) and graph:
        _out("graph")
        for line in render_graph(graph, stages):
            _out(f"  {line}")
        _out("")
    width = 10_000 if full else 60
    for s in stages:
        label = f"{s.stage_id}[{s.iteration}]" if s.iteration else s.stage_id
        status = s.status.value if hasattr(s.status, "value") else s.status
        _out(f"{status:<10} {label}  ({s.component_type}, {s.duration_ms or 0:.1f} ms, attempts {s.attempts})")
        _out(f"    input:  {_short(s.input, width)}")
        if s.error:
            _out(f"    error:  {s.error.get('message')}")
        else:
            _out(f"    output: {_short(s.output, width)}")
    if run.status.value == "completed":
        _out("")
        _out(f"output    {_short(run.output, width)}")


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
        status = (main[-1].status.value if hasattr(main[-1].status, "value") else str(main[-1].status)) if main else "not run"
        took = sum((r.duration_ms or 0) for r in main)
        iterations = len([r for r in results if r.iteration])
        deps = [d.replace("in:", "in ") for d in graph.get(sid) or []]
        label = "  " * indent[sid] + sid
        detail = f"{took:8.1f} ms" if main and status != "skipped" else " " * 11
        extra = f"  ×{iterations} iterations" if iterations else ""
        after = f"  ← {', '.join(deps)}" if deps else ""
        lines.append(f"{_MARKS.get(status, '?')} {label:<{name_width}} {status:<9} {detail}{extra}{after}")
    return lines


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
    app.command("run")(run_command)
    app.command("validate")(validate_command)
    app.command("schema")(schema_command)
    app.command("plugins")(plugins_command)
    runs = typer.Typer(help="Recorded runs.", invoke_without_command=True, no_args_is_help=False)

    @runs.callback(invoke_without_command=True)
    def _runs(ctx: typer.Context,
              pipeline: Optional[str] = typer.Option(None, "--pipeline", "-p", help="Only runs of this pipeline id."),
              status: Optional[str] = typer.Option(None, "--status", help="Only runs with this status."),
              limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000),
              as_json: bool = typer.Option(False, "--json")) -> None:
        """List recorded runs (newest first), or `fm runs show ID`."""
        if ctx.invoked_subcommand is None:
            runs_list(pipeline=pipeline, status=status, limit=limit, as_json=as_json)

    runs.command("list")(runs_list)
    runs.command("show")(runs_show)
    from .resume import register as register_resume

    register_resume(runs)
    app.add_typer(runs, name="runs")
