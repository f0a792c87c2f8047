"""The `fm` command line: the root app; commands come from plugins.

``build_app()`` makes the typer app with the global options (``--plugins``,
``--store``) and asks every plugin for its commands through
``fm_register_commands``. ``main()`` turns FlowMason errors into one clear
message and an exit code instead of a traceback.
"""
from __future__ import annotations

import sys
from typing import Any


def _preparse(argv: list[str]) -> None:
    """Apply --plugins/--store before plugins load: they decide which commands exist."""
    from .settings import set_from_option

    for i, arg in enumerate(argv):
        for opt, env in (("--plugins", "FM_PLUGINS"), ("--store", "FM_STORE")):
            if arg == opt and i + 1 < len(argv):
                set_from_option(env, argv[i + 1], opt)
            elif arg.startswith(opt + "="):
                set_from_option(env, arg.split("=", 1)[1], opt)
        if arg == "--":
            break


def build_app() -> Any:
    import typer

    from . import plugins

    app = typer.Typer(
        name="fm",
        help="FlowMason: run, record, debug, test and deploy AI pipelines.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(
        plugins_opt: str = typer.Option(None, "--plugins", help="Plugins to load, comma-separated (default: all). Also FM_PLUGINS."),
        store: str = typer.Option(None, "--store", help="Store URL or SQLite path (default: the user data folder). Also FM_STORE."),
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


if __name__ == "__main__":  # pragma: no cover
    main()
