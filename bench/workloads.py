"""The engine's standard workloads (W1 chain, W2 fan-out, W4 scale, W5/W6 compile) and their asyncio floors.

A bench-only plugin registers two components through the normal hooks:
``bench-noop`` (returns at once) and ``bench-sleep`` (awaits like a model
call would). Each workload is also written as plain asyncio code doing the
same awaits, so the table shows the engine's own overhead.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from flowmason.kernel.components import operator
from flowmason.kernel.plugins import hookimpl


@operator("bench-noop")
def bench_noop(ctx):
    return {"i": ctx.config.get("i")}


@operator("bench-async")
async def bench_async(ctx):
    await asyncio.sleep(0)
    return {"i": ctx.config.get("i")}


@operator("bench-sleep")
async def bench_sleep(ctx):
    await asyncio.sleep(ctx.config.get("seconds", 0.02))
    return {"ok": True}


class BenchPlugin:
    @hookimpl
    def fm_register_components(self, register):
        register(bench_noop)
        register(bench_async)
        register(bench_sleep)


def chain(n: int = 200, component: str = "bench-noop", slug: str = "w1-chain", name: str = "W1 chain") -> dict[str, Any]:
    stages = [{"id": "s0", "component_type": component, "config": {"i": "{{input.x}}"}}]
    stages += [
        {"id": f"s{i}", "component_type": component, "depends_on": [f"s{i - 1}"], "config": {"i": f"{{{{upstream.s{i - 1}.i}}}}"}}
        for i in range(1, n)
    ]
    return {"id": f"{slug}-{n}", "name": name, "stages": stages}


def async_chain(n: int = 200) -> dict[str, Any]:
    """W1 with async stages (what LLM stages are): each awaits once, like a model call that answers at once."""
    return chain(n, "bench-async", "w1-async-chain", "W1 async chain")


def builtin_chain(n: int) -> dict[str, Any]:
    """A chain of a built-in operator, for `fm run` in a fresh process (which has no bench plugin)."""
    stages = [{"id": "s0", "component_type": "variable-set", "config": {"name": "v", "value": "{{input.x}}"}}]
    stages += [
        {"id": f"s{i}", "component_type": "variable-set", "depends_on": [f"s{i - 1}"],
         "config": {"name": "v", "value": f"{{{{upstream.s{i - 1}.value}}}}"}}
        for i in range(1, n)
    ]
    return {"id": f"builtin-chain-{n}", "name": f"chain {n}", "stages": stages}


def fan_out(n: int, seconds: float = 0.02) -> dict[str, Any]:
    stages = [{"id": "root", "component_type": "bench-noop", "config": {"i": 0}}]
    stages += [
        {"id": f"f{i}", "component_type": "bench-sleep", "depends_on": ["root"], "config": {"seconds": seconds}}
        for i in range(n)
    ]
    stages.append({"id": "join", "component_type": "bench-noop", "depends_on": [f"f{i}" for i in range(n)], "config": {"i": 1}})
    return {"id": f"fanout-{n}", "name": f"fan-out {n}", "stages": stages}


async def floor_chain(n: int) -> None:
    async def step(i: int) -> dict[str, int]:
        return {"i": i}

    value = 0
    for _ in range(n):
        value = (await step(value))["i"]


async def floor_async_chain(n: int) -> None:
    async def step(i: int) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"i": i}

    value = 0
    for _ in range(n):
        value = (await step(value))["i"]


async def floor_fan_out(n: int, seconds: float = 0.02) -> None:
    async def work() -> dict[str, bool]:
        await asyncio.sleep(seconds)
        return {"ok": True}

    await asyncio.gather(*(work() for _ in range(n)))


def timed(coro_factory, repeat: int = 1) -> float:
    """Best wall time of ``repeat`` runs, each in a fresh event loop."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        asyncio.run(coro_factory())
        best = min(best, time.perf_counter() - t0)
    return best
