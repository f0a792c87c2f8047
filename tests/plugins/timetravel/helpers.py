"""Test components and a recorded-run helper shared by the debugging plugins' tests.

The components are registered through the real plugin hooks (a plugin
object passed to ``plugins.reset(extra=[...])``); runs are recorded in a
real SQLite store.
"""
from __future__ import annotations

import asyncio
from typing import Any

from flowmason.kernel.components import node, operator
from flowmason.kernel.model import parse_pipeline
from flowmason.kernel.plugins import hookimpl


class Components:
    """``tt-text`` (format a template), ``tt-llm`` (a deterministic fake model that records usage),
    ``tt-sleep`` and ``tt-fail``."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        me = self

        def count(ctx: Any) -> int:
            me.calls[ctx.stage.id] = me.calls.get(ctx.stage.id, 0) + 1
            return me.calls[ctx.stage.id]

        @operator("tt-text")
        def text(ctx):
            count(ctx)
            return {"text": str(ctx.config.get("text", ""))}

        @node("tt-llm")
        def llm(ctx):
            count(ctx)
            prompt = str(ctx.config.get("prompt", ""))
            words = prompt.split()
            ctx.record_usage(input_tokens=len(words), output_tokens=len(words) + 2, cost=0.001 * len(words))
            return {"text": "Answer: " + " ".join(reversed(words)), "prompt": prompt}

        @operator("tt-sleep")
        async def sleep(ctx):
            count(ctx)
            await asyncio.sleep(float(ctx.config.get("seconds", 0.01)))
            return {"slept": ctx.config.get("seconds", 0.01)}

        @operator("tt-fail")
        def fail(ctx):
            n = count(ctx)
            if n <= int(ctx.config.get("fail_times", 10**9)):
                raise RuntimeError(str(ctx.config.get("message", "boom")))
            return {"attempt": n}

        self.components = [text, llm, sleep, fail]

    @hookimpl
    def fm_register_components(self, register):
        for c in self.components:
            register(c)


def stage(sid: str, ctype: str = "tt-text", deps: tuple[str, ...] = (), **config: Any) -> dict[str, Any]:
    return {"id": sid, "component_type": ctype, "config": config, "depends_on": list(deps)}


def pipeline(*stages: dict[str, Any], pid: str = "story", **extra: Any):
    return parse_pipeline({"id": pid, "name": pid, "stages": list(stages), **extra})


def story_pipeline():
    """outline -> draft (LLM) -> review (LLM) -> final; the shape most tests use."""
    return pipeline(
        stage("outline", text="Outline about {{input.topic}}"),
        stage("draft", "tt-llm", ("outline",), prompt="Write a story: {{upstream.outline.text}} in {{input.style}} style"),
        stage("review", "tt-llm", ("draft",), prompt="Review this: {{upstream.draft.text}}"),
        stage("final", deps=("review",), text="{{upstream.review.text}}"),
    )


def record(repo: Any, pipeline_obj: Any, inputs: dict[str, Any] | None = None, **kw: Any):
    """Run and record a pipeline; returns the finished (or failed) Run."""
    from flowmason.kernel.errors import FlowMasonError
    from flowmason.kernel.executor import Execution, plan_for

    ex = Execution(plan_for(pipeline_obj), inputs or {}, recorder=repo, **kw)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        runner = asyncio.run
    else:  # inside a running loop (playwright's sync API keeps one): run in a thread of its own
        from concurrent.futures import ThreadPoolExecutor

        def runner(coro):
            with ThreadPoolExecutor(1) as pool:
                return pool.submit(asyncio.run, coro).result()
    try:
        return runner(ex.execute())
    except FlowMasonError:
        return ex.run
