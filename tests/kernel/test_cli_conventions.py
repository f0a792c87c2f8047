"""The CLI conventions of every `fm` command (kernel/cli.py, kernel/errors.py ExitCode, kernel/extras.py).

--version, shell completion, NO_COLOR / --no-color, one table of exit codes
(a missing file is 2 in run, test and validate), the extras in `fm --help`
and in the answer to a missing optional dependency, --json where a command
lists or shows something.
"""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from flowmason.kernel import cli
from flowmason.kernel.errors import ExitCode
from flowmason.kernel.extras import EXTRAS, extra_for_module

ROOT = Path(__file__).resolve().parents[2]
FM = [sys.executable, "-m", "flowmason.kernel.cli"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def fm(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(FM + args, capture_output=True, text=True, timeout=60, env={**os.environ, **env})


def test_version():
    res = fm(["--version"])
    assert res.returncode == 0 and re.fullmatch(r"fm \(flowmason\) \d+\.\d+\.\d+\S*\n", res.stdout)


def test_completion_script_and_completions():
    script = fm(["--show-completion", "bash"])
    assert script.returncode == 0 and "_FM_COMPLETE" in script.stdout
    # what the shell asks when the user types `fm ru<TAB>`
    words = fm([], _FM_COMPLETE="complete_bash", COMP_WORDS="fm ru", COMP_CWORD="1")
    assert {"run", "runs"} <= set(words.stdout.split()), words.stdout + words.stderr


def test_no_color_and_the_flag_drop_colour_codes(tmp_path):
    from rich.console import Console

    from flowmason.kernel.model import Pipeline
    from flowmason.plugins.core_cli.progress import RichProgress

    pipe = Pipeline.model_validate({"id": "p", "stages": [{"id": "a", "component_type": "logger", "config": {}}]})
    env = {"NO_COLOR": "1"}
    for colour in (False, True):
        if not colour:
            os.environ.update(env)
        try:
            buf = io.StringIO()
            with RichProgress(pipe, console=Console(file=buf, force_terminal=True)) as progress:
                progress.rows["a"][0] = "ok"  # green when colours are on
            text = buf.getvalue()
        finally:
            os.environ.pop("NO_COLOR", None)
        has_colour = re.search(r"\x1b\[[0-9;]*3[0-7]m", text) is not None
        assert has_colour is colour, text
    # the global flag sets NO_COLOR for the whole process, before any console exists
    res = fm(["--no-color", "runs", "--status", "bogus"])
    assert res.returncode == 2 and not ANSI.search(res.stderr)


def test_a_missing_file_is_the_same_code_everywhere(tmp_path):
    missing = str(tmp_path / "nope.json")
    codes = {cmd: fm([cmd, missing]).returncode for cmd in ("run", "validate", "test")}
    assert codes == {"run": ExitCode.USAGE, "validate": ExitCode.USAGE, "test": ExitCode.USAGE}
    assert fm(["runs", "show", "run_nope"]).returncode == ExitCode.NOT_FOUND
    assert fm(["settings"], FM_LLM_TIMEOUT_S="soon").returncode == ExitCode.SETUP
    assert fm(["run", "--bogus-option"]).returncode == ExitCode.USAGE  # click's own usage errors agree


def test_help_lists_exit_codes_and_extras():
    res = fm(["--help"])
    text = ANSI.sub("", res.stdout)
    assert res.returncode == 0 and "Exit codes:" in text and "Extras (pip install 'flowmason[NAME]')" in text
    for code in ExitCode:
        assert re.search(rf"^\s*{int(code)}\s+\S", text, re.M), code
    for extra in EXTRAS:
        assert f"[{extra.name}]" in text
    for command in ("init", "new", "plugin", "runs", "run"):
        assert re.search(rf"│ {command}\s", text), command


def test_the_extras_table_matches_pyproject():
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert {e.name for e in EXTRAS} == declared
    readme = (ROOT / "README.md").read_text()
    assert all(f"`{e.name}`" in readme for e in EXTRAS), "README's extras table"
    assert extra_for_module("jwt.algorithms").name == "auth" and extra_for_module("json") is None


def test_a_missing_optional_module_names_its_extra(monkeypatch, capsys):
    import typer

    app = typer.Typer()

    @app.command()
    def keys() -> None:
        raise ModuleNotFoundError("No module named 'bcrypt'", name="bcrypt")

    @app.command()
    def other() -> None:
        pass

    monkeypatch.setattr(cli, "build_app", lambda: app)
    with pytest.raises(SystemExit) as exc:
        cli.main(["keys"])
    assert exc.value.code == ExitCode.SETUP
    assert "needs the auth extra (bcrypt is not installed) (fix: pip install 'flowmason[auth]')" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["plugins"], ["settings"], ["runs"], ["runs", "list"], ["store", "info"],
                                  ["auth", "keys"]])
def test_listing_commands_print_json(args):
    res = fm([*args, "--json"])
    assert res.returncode == 0, res.stderr
    json.loads(res.stdout)


# commands that act rather than list or show, or whose output is already data
NO_JSON = {
    "export": "--format json",
    "play": "a terminal animation; `fm export --format json` is its data",
    "serve": "a server", "init": "writes files", "new pipeline": "writes a file", "plugin new": "writes files",
    "store export": "prints JSON lines", "store import": "reads JSON lines",
    "auth rotate-keys": "an action", "auth create-user": "an action",
    "debug retention": "an action", "debug cleanup": "an action",
}


def _commands(command, path=()):
    if hasattr(command, "list_commands"):
        for name in command.list_commands(None):
            yield from _commands(command.get_command(None, name), (*path, name))
    else:
        yield " ".join(path), {o for p in command.params for o in getattr(p, "opts", [])}


def test_every_command_that_lists_or_shows_has_json():
    import typer

    tree = dict(_commands(typer.main.get_command(cli.build_app())))
    without = {name for name, opts in tree.items() if "--json" not in opts}
    assert without == set(NO_JSON), f"add --json to {sorted(without - set(NO_JSON))}, or say why not in NO_JSON"


def test_every_option_and_argument_says_what_it_is_for():
    import typer

    missing = []

    def walk(command, path):
        for param in command.params:
            if not getattr(param, "help", None):
                missing.append(f"fm {' '.join(path)} {param.opts}")
        if hasattr(command, "list_commands"):
            for name in command.list_commands(None):
                walk(command.get_command(None, name), (*path, name))

    walk(typer.main.get_command(cli.build_app()), ())
    assert not missing, missing
