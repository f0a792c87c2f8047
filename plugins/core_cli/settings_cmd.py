"""``fm settings``: every FM_* setting, its value (secrets masked), where it came from, and what it does.

The table is ``flowmason.kernel.settings.describe()``; a malformed value is
shown with its error instead of stopping the listing, since this is the
command a user runs to find it.
"""
from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from flowmason.kernel.errors import ExitCode


def settings_command(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per setting, in a list."),
    owner: Optional[str] = typer.Option(None, "--owner", help="Only the settings of this part (kernel, auth, providers...)."),
    changed: bool = typer.Option(False, "--changed", help="Only settings that are not at their default."),
) -> None:
    """List every FM_* setting: value (secrets masked), source (environment, option or default), meaning."""
    from flowmason.kernel.settings import describe

    rows = [r for r in describe() if (owner is None or r["owner"] == owner) and (not changed or r["source"] != "default")]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        width = max((len(r["name"]) for r in rows), default=0)
        for r in rows:
            value = r["value"] if r["value"] != "" else "-"
            sys.stdout.write(f"{r['name']:<{width}}  {value}  [{r['source']}, {r['owner']}]  {r['doc']}\n")
            if r["error"]:
                sys.stdout.write(f"{'':<{width}}  error: {r['error']}\n")
    if any(r["error"] for r in rows):
        raise typer.Exit(ExitCode.SETUP)


def register(app: typer.Typer) -> None:
    app.command("settings")(settings_command)
