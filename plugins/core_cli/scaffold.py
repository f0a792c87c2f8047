"""Scaffolding: `fm init`, `fm new pipeline`, `fm plugin new`.

    fm init [DIR] --template basic|ai|etl   a project: a pipeline, its test file (with a cassette), a README
    fm new pipeline NAME [--template T]     one more pipeline in pipelines/
    fm plugin new NAME [--dir D]            a third-party plugin package: entry point, a component, a hook, tests

Files are written from the templates below and never over an existing file
(``--force`` to replace). The ``ai`` template's cassette is made, not typed:
its test case runs once through the real runner with a canned model in
place of the pipeline's provider, inside a recording cassette, so the key
of every call is exactly what `fm test` computes when it replays it, and
`fm test` passes offline with no key and no model server.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

import typer

from flowmason.kernel.errors import InputError

TEMPLATES = ("basic", "ai", "etl")
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def _check_name(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise InputError(f"{what} name {name!r} is not a lower-case name", field=what,
                         hint="use letters, digits, '-' and '_', starting with a letter, e.g. my-flow")
    return name


def pipeline_doc(name: str, template: str) -> dict[str, Any]:
    """The pipeline a template starts with (valid, runnable, and no key needed except ``ai`` without its cassette)."""
    if template == "basic":
        return {
            "id": name, "name": name, "version": "0.1.0",
            "description": "Greets someone and says how long their name is.",
            "input_schema": {"type": "object", "properties": {"name": {"type": "string", "default": "world"}}},
            "example_input": {"name": "Ada"},
            "output_stage_id": "greet",
            "stages": [
                {"id": "greet", "component_type": "json-transform",
                 "config": {"data": "{{input}}", "template": {"greeting": "Hello, {{data.name}}!",
                                                             "letters": "{{len(data.name)}}"}}},
                {"id": "log", "component_type": "logger", "depends_on": ["greet"],
                 "config": {"message": "{{upstream.greet.greeting}}", "level": "info"}},
            ],
        }
    if template == "etl":
        return {
            "id": name, "name": name, "version": "0.1.0",
            "description": "Extract rows, keep the valid ones, transform them and load a summary.",
            "input_schema": {"type": "object", "required": ["rows"], "properties": {"rows": {"type": "array"}}},
            "example_input": {"rows": [{"sku": "a", "qty": 2, "price": 3.5}, {"sku": "b", "qty": 0, "price": 9}]},
            "output_stage_id": "load",
            "stages": [
                {"id": "extract", "component_type": "json-transform",
                 "config": {"data": "{{input}}", "template": {"rows": "{{data.rows}}"}}},
                {"id": "keep", "component_type": "filter", "depends_on": ["extract"],
                 "config": {"data": "{{upstream.extract.rows}}", "filter_mode": "filter_array", "condition": "item['qty'] > 0"}},
                {"id": "load", "component_type": "json-transform", "depends_on": ["keep"],
                 "config": {"data": "{{upstream.keep}}", "template": {"kept": "{{data.data}}",
                                                                     "count": "{{len(data.data)}}"}}},
            ],
        }
    if template == "ai":
        return {
            "id": name, "name": name, "version": "0.1.0",
            "description": "Drafts a tagline with a model, then a critic reviews it. Runs on a local Ollama "
                           "(`ollama pull llama3.2`); `fm test` replays the recorded calls with no model at all.",
            "input_schema": {"type": "object", "required": ["product"], "properties": {"product": {"type": "string"}}},
            "example_input": {"product": "solar kettle"},
            "output_stage_id": "review",
            "stages": [
                {"id": "draft", "component_type": "generator", "provider": "ollama", "model": "llama3.2",
                 "config": {"prompt": "Write one tagline for {{input.product}}.", "max_tokens": 60}},
                {"id": "review", "component_type": "critic", "provider": "ollama", "model": "llama3.2",
                 "depends_on": ["draft"],
                 "config": {"content": "{{upstream.draft.content}}", "criteria": "short, concrete, no clichés"}},
            ],
        }
    raise InputError(f"unknown template {template!r}", field="--template", hint=f"use one of: {', '.join(TEMPLATES)}")


def test_doc(name: str, template: str) -> dict[str, Any]:
    pipeline = f"../pipelines/{name}.pipeline.json"
    if template == "basic":
        case = {"name": "greets by name", "input": {"name": "Ada"},
                "assertions": [{"path": "greeting", "type": "equals", "value": "Hello, Ada!"}]}
    elif template == "etl":
        case = {"name": "drops rows without a quantity",
                "input": {"rows": [{"sku": "a", "qty": 2, "price": 3.5}, {"sku": "b", "qty": 0, "price": 9}]},
                "assertions": [{"path": "count", "type": "equals", "value": 1}]}
    else:
        case = {"name": "the critic scores the draft", "input": {"product": "solar kettle"},
                "assertions": [{"stage": "draft", "type": "status", "value": "completed"},
                               {"path": "score", "type": "exists"}]}
    doc: dict[str, Any] = {"name": name, "pipeline": pipeline, "tests": [case]}
    doc["cassette"] = f"cassettes/{name}.cassette.json"  # model calls replay from here (`fm test --record` remakes it)
    return doc


def readme(project: str, name: str, template: str) -> str:
    run_input = json.dumps(pipeline_doc(name, template)["example_input"])
    ai = ("\nThe pipeline calls a model through Ollama (`ollama serve`, `ollama pull llama3.2`); a local model "
          "costs $0 in `fm runs show`. Set a stage's `provider`/`model` (or `FM_PROVIDER`) for another one.\n"
          if template == "ai" else "")
    return f"""# {project}

A FlowMason project (`fm init --template {template}`).

```bash
fm validate pipelines/*.pipeline.json
fm run pipelines/{name}.pipeline.json --input '{run_input}'
fm test tests/                  # replays tests/cassettes/: offline, no key
fm runs                         # what ran; `fm runs show last` for the detail
fm new pipeline another         # one more pipeline
```
{ai}"""


def _write(path: Path, text: str, force: bool, written: list[Path]) -> None:
    if path.exists() and not force:
        raise InputError(f"{path} exists already", hint="pick another name or folder, or pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    written.append(path)


def _json(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


class _CannedModel:
    """Stands in for a provider while the ``ai`` template's cassette is recorded: a fixed, plausible answer."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    def _answer(self, request: Any) -> Any:
        from flowmason.kernel.providers import Completion

        wants_json = request.json_schema is not None
        text = (json.dumps({"feedback": "Concrete and short; name the benefit.", "score": 0.8})
                if wants_json else "Boil water with sunshine.")
        return Completion(text=text, model=request.model or "canned", input_tokens=len(request.prompt.split()),
                          output_tokens=len(text.split()), cost_usd=0.0, stop_reason="stop")

    async def complete(self, request: Any) -> Any:
        return self._answer(request)

    async def stream(self, request: Any) -> Any:
        answer = self._answer(request)
        yield answer.text
        yield answer


def record_cassette(pipeline_file: Path, inputs: dict[str, Any], cassette_file: Path) -> None:
    """Run ``pipeline_file`` once on ``inputs`` with canned models, recording every call into ``cassette_file``."""
    from flowmason.kernel.plugins import get_registry
    from flowmason.kernel.runner import Runner
    from flowmason.plugins.cassettes import Cassette, use_cassette

    providers = get_registry().providers
    saved = dict(providers)
    providers.update({name: _CannedModel for name in saved})
    cassette = Cassette(cassette_file, "record")
    try:
        with use_cassette(cassette):
            Runner(record=False).run_sync(pipeline_file, inputs)
    finally:
        providers.clear()
        providers.update(saved)
    cassette.flush()


def init_project(folder: Path, template: str, force: bool = False) -> list[Path]:
    if template not in TEMPLATES:
        pipeline_doc("x", template)  # raises the clear error
    folder = folder.resolve()
    name = _check_name(re.sub(r"[^a-z0-9_-]", "-", folder.name.lower()).strip("-") or "main", "project")
    name = name if name[0].isalpha() else f"p-{name}"
    written: list[Path] = []
    _write(folder / "pipelines" / f"{name}.pipeline.json", _json(pipeline_doc(name, template)), force, written)
    test_file = folder / "tests" / f"{name}.test.json"
    _write(test_file, _json(test_doc(name, template)), force, written)
    _write(folder / "README.md", readme(folder.name, name, template), force, written)
    _write(folder / ".gitignore", ".flowmason/\n", force, written)
    cassette = folder / "tests" / "cassettes" / f"{name}.cassette.json"
    if cassette.exists() and not force:
        _write(cassette, "", force, written)  # raises the clear error
    cassette.parent.mkdir(parents=True, exist_ok=True)
    if template == "ai":
        record_cassette(written[0], test_doc(name, template)["tests"][0]["input"], cassette)
    else:  # no model calls: an empty cassette, ready for when a stage calls one
        cassette.write_text(_json({"version": 1, "interactions": []}), encoding="utf-8")
    written.append(cassette)
    return written


def init_command(
    folder: Path = typer.Argument(Path("."), help="Project folder (made if missing; default: here)."),
    template: str = typer.Option("basic", "--template", "-t", help="basic (operators), ai (model calls) or etl."),
    force: bool = typer.Option(False, "--force", help="Replace files that exist."),
) -> None:
    """Start a project: a pipeline, a test file with its cassette, a README."""
    written = init_project(folder, template, force)
    for path in written:
        typer.echo(f"created {path}")
    rel = folder if folder != Path(".") else Path(".")
    typer.echo(f"next: cd {rel} && fm test tests/ && fm run {written[0].relative_to(folder.resolve())}", err=True)


def new_pipeline_command(
    name: str = typer.Argument(..., help="Pipeline id and file name (NAME.pipeline.json)."),
    template: str = typer.Option("basic", "--template", "-t", help="basic, ai or etl."),
    folder: Path = typer.Option(Path("pipelines"), "--dir", help="Where to write it."),
    force: bool = typer.Option(False, "--force", help="Replace the file if it exists."),
) -> None:
    """Add a pipeline from a template."""
    _check_name(name, "pipeline")
    written: list[Path] = []
    _write(folder / f"{name}.pipeline.json", _json(pipeline_doc(name, template)), force, written)
    typer.echo(f"created {written[0]}")
    typer.echo(f"next: fm validate {written[0]}", err=True)


def plugin_files(name: str) -> dict[str, str]:
    """The files of a plugin package ``fm-NAME`` whose module is ``fm_NAME``."""
    module = "fm_" + name.replace("-", "_")
    component = f"{name}-shout"
    return {
        "pyproject.toml": f"""[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "fm-{name}"
version = "0.1.0"
description = "A FlowMason plugin: the {component} component and an `fm {name}` command."
requires-python = ">=3.11"
dependencies = ["flowmason"]

# FlowMason finds plugins through this entry-point group; `fm plugins` lists it once installed
[project.entry-points.flowmason]
{name} = "{module}.plugin"

[tool.setuptools]
packages = ["{module}"]
""",
        f"{module}/__init__.py": f'"""The fm-{name} FlowMason plugin (the hooks are in plugin.py)."""\n',
        f"{module}/plugin.py": f'''"""Hooks of the fm-{name} plugin: a component and a command.

Every hook is documented in flowmason.kernel.hookspecs (who calls it, when, what it returns).
"""
from flowmason import hookimpl, operator


@operator("{component}", description="Upper-case `text` and add an exclamation mark")
def shout(ctx):
    return {{"text": str(ctx.config.get("text", "")).upper() + "!"}}


@hookimpl
def fm_register_components(register):
    register(shout)


@hookimpl
def fm_register_commands(app):
    @app.command("{name}")
    def hello(name: str = "world"):
        """Say hello (from the fm-{name} plugin)."""
        print(f"hello from fm-{name}, {{name}}")
''',
        "tests/test_plugin.py": f'''"""The plugin through FlowMason's own runner and CLI (pip install -e . first)."""
import subprocess
import sys

import flowmason


def test_the_component_runs_in_a_pipeline():
    pipeline = {{"id": "t", "stages": [{{"id": "s", "component_type": "{component}", "config": {{"text": "hi"}}}}]}}
    run = flowmason.run(pipeline)
    assert run.output == {{"text": "HI!"}}


def test_fm_plugins_lists_it():
    out = subprocess.run([sys.executable, "-m", "flowmason.kernel.cli", "plugins", "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert '"{name}"' in out and "component:{component}" in out
''',
        "README.md": f"""# fm-{name}

A FlowMason plugin (made by `fm plugin new {name}`): the `{component}` component and an `fm {name}` command.

```bash
pip install -e .        # into the environment where `fm` lives
fm plugins              # lists {name}
fm {name} --name Ada
pytest tests/
```

Edit `{module}/plugin.py`; the hooks are documented in `flowmason.kernel.hookspecs`.
""",
    }


def plugin_new_command(
    name: str = typer.Argument(..., help="Plugin name: the package is fm-NAME, the module fm_NAME."),
    folder: Optional[Path] = typer.Option(None, "--dir", help="Where to make the package (default: ./fm-NAME)."),
    force: bool = typer.Option(False, "--force", help="Replace files that exist."),
) -> None:
    """Make a third-party plugin package: entry point, a component, a hook and its tests."""
    _check_name(name, "plugin")
    root = folder or Path(f"fm-{name}")
    written: list[Path] = []
    for rel, text in plugin_files(name).items():
        _write(root / rel, text, force, written)
    for path in written:
        typer.echo(f"created {path}")
    typer.echo(f"next: pip install -e {root} && fm plugins", err=True)


def register(app: typer.Typer) -> None:
    app.command("init")(init_command)
    new = typer.Typer(help="Add something to a project: `fm new pipeline NAME`.", no_args_is_help=True)
    new.command("pipeline")(new_pipeline_command)
    app.add_typer(new, name="new")
    plugin = typer.Typer(help="Write plugins: `fm plugin new NAME`.", no_args_is_help=True)
    plugin.command("new")(plugin_new_command)
    app.add_typer(plugin, name="plugin")
