"""The `fm test` command (typer is imported here, and this module only from the CLI hook)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from flowmason.kernel.errors import ExitCode


def test_command(
    paths: Optional[List[Path]] = typer.Argument(None, help="Test files or folders (default: the current folder, *.test.json)."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write a JUnit XML report here (for CI)."),
    coverage: Path = typer.Option(Path(".flowmason/coverage.json"), "--coverage", help="Where to write per-stage coverage (JSON, read by editors)."),
    no_coverage: bool = typer.Option(False, "--no-coverage", help="Do not write the coverage file."),
    record: bool = typer.Option(False, "--record", help="Make real model calls and re-record the cassettes."),
    update: bool = typer.Option(False, "--update", help="Replay what the cassettes hold; record only the missing calls."),
    name: Optional[str] = typer.Option(None, "--filter", "-k", help="Run only cases whose name contains this."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Run pipeline tests (*.test.json): assertions on stage and pipeline outputs, replayed model calls."""
    import asyncio
    import json

    from . import runner

    files = runner.discover(list(paths or [Path(".")]))
    if not files:
        typer.echo("no test files found (*.test.json)", err=True)
        raise typer.Exit(ExitCode.USAGE)
    mode = "record" if record else "update" if update else "replay"
    results = asyncio.run(runner.run_all(files, mode=mode, name_filter=name))
    if junit:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(runner.junit_xml(results), encoding="utf-8")
    cov = runner.coverage(results)
    if not no_coverage:
        coverage.parent.mkdir(parents=True, exist_ok=True)
        coverage.write_text(json.dumps(cov, indent=1, ensure_ascii=False), encoding="utf-8")
    totals = runner.totals(results)
    if as_json:
        typer.echo(json.dumps({"totals": totals, "files": [_file_json(r) for r in results], "coverage": cov["summary"]},
                              default=str, ensure_ascii=False, indent=1))
    else:
        for line in runner.text_report(results):
            typer.echo(line)
        s = cov["summary"]
        if s["total"]:
            typer.echo(f"stage coverage: {s['coverage_percent']}% ({s['executed']} executed, {s['failed']} failed, "
                       f"{s['skipped']} skipped, {s['not_covered']} not covered)")
    if totals["failed"] or totals["error"]:
        raise typer.Exit(ExitCode.FAILED)



def _file_json(r) -> dict:
    from dataclasses import asdict

    return {"file": str(r.path), "name": r.name, "pipeline": str(r.pipeline_path) if r.pipeline_path else None,
            "error": r.error, "cases": [asdict(c) for c in r.cases]}
