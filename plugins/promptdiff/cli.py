"""`fm diff-output A B --stage X`: word diff of a stage's prompt, input or output between runs or snapshots.

(`fm diff` is the pipeline diff; this one compares what ran.)
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from flowmason.kernel.errors import InputError


def diff_output_cmd(
    a: str = typer.Argument(..., help="First side: RUN_ID, or RUN_ID@SEQ for a snapshot."),
    b: str = typer.Argument(..., help="Second side: RUN_ID, or RUN_ID@SEQ."),
    stage: str = typer.Option(..., "--stage", "-s", help="Stage id (STAGE[i] for a foreach iteration)."),
    field: str = typer.Option("output", "--field", "-f", help="output, input or prompt."),
    key: Optional[str] = typer.Option(None, "--key", "-k", help="Dotted path inside the value, e.g. text."),
    fmt: str = typer.Option("color", "--format", help="color (terminal), text ([-old-]{+new+}) or html."),
    out: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    as_json: bool = typer.Option(False, "--json", help="Print both sides and the word diff as JSON."),
) -> None:
    """Word-level diff of a stage's prompt, input or output in two runs or snapshots."""
    from flowmason.kernel.runs import RunRepository
    from flowmason.kernel.storage import open_store

    from .diff import diff_values, render_html, render_rich, render_text
    from .sources import side_value

    if fmt not in ("color", "text", "html"):
        raise InputError(f"unknown format '{fmt}'", field="--format", hint="use color, text, html (or --json)")
    repo = RunRepository(open_store())
    va, la = side_value(repo, a, stage, field, key)
    vb, lb = side_value(repo, b, stage, field, key)
    diff = diff_values(va, vb)
    title = f"{la}  →  {lb}"
    if as_json:
        import json

        sys.stdout.write(json.dumps({"a": {"label": la, "value": va}, "b": {"label": lb, "value": vb},
                                     "changed": diff.changed, "exact": diff.exact,
                                     "ops": [{"op": op, "text": text} for op, text in diff.ops]},
                                    indent=2, default=str, ensure_ascii=False) + "\n")
        return
    if fmt == "html":
        text = render_html(diff, title=title, page=True)
    elif fmt == "text" or out is not None:
        text = f"--- {la}\n+++ {lb}\n{render_text(diff)}\n"
    else:
        from rich.console import Console

        con = Console(soft_wrap=True)
        con.print(f"--- {la}\n+++ {lb}", markup=False, highlight=False)
        con.print(render_rich(diff))
        if not diff.changed:
            con.print("(identical)")
        return
    if out is not None:
        out.write_text(text, encoding="utf-8")
        sys.stdout.write(f"wrote {out}\n")
    else:
        sys.stdout.write(text)


def register_commands(app: Any) -> None:
    app.command("diff-output")(diff_output_cmd)
