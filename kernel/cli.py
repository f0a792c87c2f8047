"""The `fm` command line: the root app; commands come from plugins.

``build_app()`` makes the typer app with the global options (``--plugins``,
``--store``) and asks every plugin for its commands through
``fm_register_commands``. ``main()`` turns FlowMason errors into one clear
message and an exit code instead of a traceback; the codes are one table
(``flowmason.kernel.errors.ExitCode``), shown at the end of ``fm --help``
with the extras (``flowmason.kernel.extras``). A missing optional
dependency is named with the extra that installs it.

Colour: rich honours ``NO_COLOR`` (no-color.org) everywhere output is
drawn; ``--no-color`` sets it for the whole process. Shell completion is
typer's (``fm --install-completion``, ``fm --show-completion``).

A plugin subset (``--plugins control_flow,operators``, for a small device)
still gets the core commands in the ``fm`` process: ``main()`` adds
``CLI_PLUGINS`` to the subset, so ``fm run`` exists and can record the run.
The Python API and the servers load exactly the subset they are given.
"""
from __future__ import annotations

import os
import sys
from typing import Any


# What every `fm` process keeps, whatever subset is asked for: the core commands (run, validate,
# runs, plugins) and the embedded store `fm run` records to by default (standard-library sqlite3).
# Without them `fm --plugins control_flow,operators run x.pipeline.json` says "No such command 'run'".
CLI_PLUGINS = ("core_cli", "sqlite_store")


def with_cli_plugins(spec: str | None) -> str | None:
    """``spec`` (FM_PLUGINS syntax) with ``+name`` for each CLI plugin a subset leaves out.

    Only a subset needs it (the defaults already hold them); a plugin the spec
    names itself, ``-core_cli`` included, is left as the spec says.
    """
    names = [n.strip() for n in (spec or "").split(",") if n.strip()]
    if not any(n[0] not in "+-" for n in names):
        return spec  # no subset: defaults plus or minus some
    mentioned = {n.lstrip("+-") for n in names}
    return ",".join(names + [f"+{p}" for p in CLI_PLUGINS if p not in mentioned])


def _preparse(argv: list[str]) -> None:
    """Apply --plugins/--store before plugins load (they decide which commands exist), keeping CLI_PLUGINS."""
    from .settings import get_settings, set_from_option

    for i, arg in enumerate(argv):
        for opt, env in (("--plugins", "FM_PLUGINS"), ("--store", "FM_STORE")):
            if arg == opt and i + 1 < len(argv):
                set_from_option(env, argv[i + 1], opt)
            elif arg.startswith(opt + "="):
                set_from_option(env, arg.split("=", 1)[1], opt)
        if arg == "--no-color":  # before any console is made, so every rich console sees it
            os.environ["NO_COLOR"] = "1"
        if arg == "--":
            break
    spec = get_settings().plugins
    if spec and with_cli_plugins(spec) != spec:
        # a subset keeps the CLI's own plugins; `fm settings` says where the value came from
        set_from_option("FM_PLUGINS", with_cli_plugins(spec), "--plugins (with the CLI's own plugins)")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("flowmason")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
        return "unknown"


def epilog() -> str:
    """The end of ``fm --help``: exit codes and extras (typer's rich help keeps blank-line paragraphs)."""
    from .errors import ExitCode
    from .extras import EXTRAS

    meaning = {0: "success", 1: "it ran and failed (a stage, a test, a check)",
               2: "bad arguments, input or pipeline file (missing, unreadable, invalid)",
               3: "no such run, snapshot, stage or component", 4: "setup: missing extra, bad FM_* setting, plugin or store",
               130: "cancelled"}
    codes = "  \n".join(f"{int(c):>3}  {meaning[int(c)]}" for c in ExitCode)
    extras = "  \n".join(f"[{e.name}]  {e.unlocks}" for e in EXTRAS)
    return (f"Exit codes:  \n{codes}\n\nExtras (pip install 'flowmason[NAME]'):  \n{extras}\n\n"
            "NO_COLOR=1 or --no-color turns colours off.")


def build_app() -> Any:
    import typer

    from . import plugins

    app = typer.Typer(
        name="fm",
        help="FlowMason: run, record, debug, test and deploy AI pipelines.",
        epilog=epilog(),
        no_args_is_help=True,
        rich_markup_mode="markdown",
        pretty_exceptions_enable=False,
    )

    def _print_version(value: bool) -> None:
        if value:
            typer.echo(f"fm (flowmason) {version()}")
            raise typer.Exit()

    @app.callback()
    def _root(
        plugins_opt: str = typer.Option(None, "--plugins", help="Plugins to load, comma-separated (default: all). Also FM_PLUGINS."),
        store: str = typer.Option(None, "--store", help="Store URL or SQLite path (default: the user data folder). Also FM_STORE."),
        no_color: bool = typer.Option(False, "--no-color", help="No colours in any output (same as NO_COLOR=1)."),
        show_version: bool = typer.Option(False, "--version", "-V", callback=_print_version, is_eager=True,
                                          help="Print the version and exit."),
    ) -> None:
        """FlowMason: run, record, debug, test and deploy AI pipelines."""

    # plugin by plugin in registration order, so `fm --help` lists core commands first
    for name, call in plugins.each_plugin(plugins.get_plugin_manager(), "fm_register_commands"):
        plugins.call_plugin(name, "fm_register_commands", call, app=app)
    return app


def main(argv: list[str] | None = None) -> None:
    from .errors import FlowMasonError

    argv = list(sys.argv[1:] if argv is None else argv)
    _preparse(argv)
    try:
        app = build_app()
        app(args=argv, prog_name="fm", standalone_mode=True)
    except FlowMasonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except ImportError as exc:
        from .errors import ExitCode
        from .extras import extra_for_module, install_hint

        extra = extra_for_module(exc.name)
        if extra is None:
            raise
        print(f"error: this needs the {extra.name} extra ({exc.name} is not installed) (fix: {install_hint(extra)})",
              file=sys.stderr)
        raise SystemExit(ExitCode.SETUP) from None


if __name__ == "__main__":  # pragma: no cover
    main()
