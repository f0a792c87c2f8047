"""Implementations of `fm run`, `fm validate`, `fm schema`, `fm plugins` (`fm runs` is in runs_cli)."""
from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from flowmason.kernel.errors import ExitCode, FlowMasonError, InputError, PipelineValidationError


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2 if sys.stdout.isatty() else None, default=str, ensure_ascii=False)


def parse_inputs(inline: str | None, path: Path | None) -> dict[str, Any]:
    """`--input '{...}'`, `--input @file.json` or `--input-file file.json`."""
    if inline and inline.startswith("@"):
        path, inline = Path(inline[1:]), None
    text = None
    source = "--input"
    if path is not None:
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read input file {path}: {exc.strerror}", field="input") from None
    elif inline is not None:
        text = inline
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
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
    input: Optional[str] = typer.Option(None, "--input", "-i", help="Inputs as a JSON object, or @file.json."),
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
    try:
        plan = runner.compile(pipeline)
    except PipelineValidationError as exc:
        _record_invalid(runner.recorder, pipeline, inputs, exc)
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
            pipeline, loader = runner.load(path)
            plan = runner.validate(pipeline, loader)
            report.append({"file": str(path), "ok": True, "stages": len(pipeline.stages), "abstract": pipeline.abstract,
                           "warnings": plan.warnings, "problems": []})
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
                kind = "abstract base, " if entry["abstract"] else ""
                _out(f"ok      {entry['file']} ({kind}{entry['stages']} stages)")
                for w in entry["warnings"]:
                    _out(f"        warning: {w}")
            else:
                _out(f"INVALID {entry['file']}")
                for line in entry["text"]:
                    _out(f"        {line}")
    if bad:
        raise typer.Exit(ExitCode.USAGE)


def schema_command(
    component: Optional[str] = typer.Option(None, "--component", help="Show one component: its config and output fields."),
    as_json: bool = typer.Option(False, "--json", help="With --component: the description as JSON."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file."),
) -> None:
    """Export the JSON Schema of .pipeline.json files (for editors), or show one component's config and output fields."""
    from flowmason.kernel.model import Pipeline
    from flowmason.kernel.plugins import get_registry

    reg = get_registry()
    if component:
        comp = reg.component(component)
        if not as_json and output is None:
            from .schema_view import component_text

            _out(component_text(comp))
            return
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


def plugins_command(as_json: bool = typer.Option(False, "--json", help="Print the plugins as JSON.")) -> None:
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


def register(app: typer.Typer) -> None:
    from .runs_cli import register as register_runs

    app.command("run")(run_command)
    app.command("validate")(validate_command)
    app.command("schema")(schema_command)
    app.command("plugins")(plugins_command)
    register_runs(app)
