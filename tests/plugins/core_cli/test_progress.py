"""What `fm run` shows while it runs (plugins/core_cli/progress.py): the live view and the piped lines.

Real executions through the runner; the AI stage calls the real openai
provider against the local model server on 127.0.0.1, so its cost is $0.
"""
from __future__ import annotations

import io

from rich.console import Console

from flowmason.kernel.runner import Runner
from flowmason.kernel.runs import short_id
from flowmason.plugins.core_cli.progress import PlainProgress, RichProgress
from tests.plugins.providers.conftest import llm_env, llm_server  # noqa: F401 - fixtures

PIPELINE = {
    "id": "tagline", "name": "Tagline",
    "stages": [
        {"id": "draft", "component_type": "generator", "provider": "openai", "model": "gpt-4o-mini",
         "config": {"prompt": "a tagline for tea"}},
        {"id": "note", "component_type": "logger", "depends_on": ["draft"],
         "config": {"message": "drafted: {{upstream.draft.content}}", "level": "info"}},
        {"id": "boom", "component_type": "json-transform", "depends_on": ["note"], "config": {"template": "{{1/0}}"}},
        {"id": "after", "component_type": "logger", "depends_on": ["boom"], "config": {"message": "never"}},
    ],
}


def run_with(listener_factory):
    runner = Runner(record=False)
    pipeline, loader = runner.load(PIPELINE)
    listener = listener_factory(pipeline)
    ex = runner.execution(runner.compile(pipeline), {}, listeners=[listener], loader=loader)
    import asyncio

    async def go():
        try:
            await ex.execute()
        except Exception:  # noqa: BLE001 - the failed stage is the point
            pass

    if isinstance(listener, RichProgress):
        with listener:
            asyncio.run(go())
    else:
        asyncio.run(go())
    return ex.run


def test_the_live_view_shows_id_logs_tokens_cost_and_the_end(llm_env):  # noqa: F811 - fixture
    buf = io.StringIO()
    run = run_with(lambda p: RichProgress(p, console=Console(file=buf, force_terminal=True, width=140, no_color=True)))
    text = buf.getvalue()
    assert f"run {run.id} ({short_id(run.id)}) · Tagline" in text
    assert "[log] note: info: drafted: Echo: a tagline for tea" in text
    final = text.rsplit("\x1b[?25h", 1)[0]  # the last frame of the table
    assert "→" in final and "tokens $0" in final  # per-stage tokens and cost; a local endpoint costs nothing
    assert "FAILED" in final and "not run" in final  # a stage after a failure says it never ran
    assert f"run {run.id} ({short_id(run.id)}) failed in " in text  # printed once the table is done


def test_piped_lines_carry_the_same(llm_env):  # noqa: F811 - fixture
    buf = io.StringIO()
    run = run_with(lambda p: PlainProgress(buf))
    lines = buf.getvalue().splitlines()
    assert lines[0] == f"run {run.id} ({short_id(run.id)}) started: Tagline"
    draft = next(x for x in lines if x.endswith(")") and "draft" in x)
    assert "ok" in draft and "tokens $0)" in draft
    assert any(x.startswith("[    log    ] note: info: drafted:") for x in lines)
    assert lines[-1].startswith(f"run {run.id} ({short_id(run.id)}) failed in ") and "tokens $0" in lines[-1]
