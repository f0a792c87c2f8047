"""Test components registered through the real plugin hooks, and pipeline-building shorthands."""
from __future__ import annotations

import asyncio
from collections import Counter

from flowmason.kernel.components import operator
from flowmason.kernel.executor import run_pipeline
from flowmason.kernel.model import parse_pipeline
from flowmason.kernel.plugins import hookimpl


class Probe:
    """A plugin with counting test components and event listeners."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.events: list[tuple[str, str | None]] = []
        self.running = 0
        self.max_running = 0
        probe = self

        @operator("t-echo")
        def echo(ctx):
            probe.calls[ctx.stage.id] += 1
            return {"value": ctx.config.get("value"), "stage": ctx.stage.id}

        @operator("t-sleep")
        async def sleep(ctx):
            probe.calls[ctx.stage.id] += 1
            probe.running += 1
            probe.max_running = max(probe.max_running, probe.running)
            try:
                await asyncio.sleep(float(ctx.config.get("seconds", 0.01)))
            finally:
                probe.running -= 1
            return {"slept": ctx.config.get("seconds", 0.01)}

        @operator("t-fail")
        def fail(ctx):
            probe.calls[ctx.stage.id] += 1
            n = probe.calls[ctx.stage.id]
            if n <= int(ctx.config.get("fail_times", 10**9)):
                raise RuntimeError(ctx.config.get("message", "boom"))
            return {"attempt": n}

        self.components = [echo, sleep, fail]

    @hookimpl
    def fm_register_components(self, register):
        for c in self.components:
            register(c)

    @hookimpl
    def fm_stage_finished(self, run, stage, result):
        self.events.append(("finished", stage.id))

    @hookimpl
    def fm_stage_failed(self, run, stage, result):
        self.events.append(("failed", stage.id))

    @hookimpl
    def fm_stage_skipped(self, run, stage, result):
        self.events.append(("skipped", stage.id))

    @hookimpl
    def fm_run_finished(self, run, pipeline):
        self.events.append(("run", run.status.value))


def P(*stages, **extra):
    return parse_pipeline({"id": extra.pop("id", "p"), "name": "p", "stages": list(stages), **extra})


def S(sid, ctype="t-echo", deps=(), **config):
    d = {"id": sid, "component_type": ctype, "config": config, "depends_on": list(deps)}
    return d


def run(p, inputs=None, **kw):
    return asyncio.run(run_pipeline(p, inputs or {}, **kw))
