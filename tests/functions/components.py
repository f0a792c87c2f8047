"""A test component that counts its calls, and can crash or take its time, for worker tests.

``tally`` keys its counters by stage id, or ``stage[index]`` when its config
has an ``index`` (a foreach iteration). ``CALLS`` counts starts, ``DONE``
counts completions. A key in ``CRASH_ONCE`` raises ``Crash`` on its first
call; a key in ``CRASH_ALWAYS`` on every call. With ``say`` in its config it logs that line, with ``tokens`` it
streams them (``stage.token``), and with ``hold`` it waits (at most 10 s)
for the test to set ``HOLD``: a stage that is visibly running. ``Crash`` is a
BaseException: like a killed process it escapes the executor's error
handling and ends the Lambda invocation, so the message comes back.
"""
from __future__ import annotations

import asyncio
import threading
from collections import Counter

from flowmason.kernel.components import operator
from flowmason.kernel.plugins import hookimpl

CALLS: Counter = Counter()
DONE: Counter = Counter()
CRASH_ONCE: set[str] = set()
CRASH_ALWAYS: set[str] = set()
HOLD = threading.Event()
_lock = threading.Lock()


class Crash(BaseException):
    """The worker died in the middle of a stage."""


def reset() -> None:
    with _lock:
        CALLS.clear()
        DONE.clear()
        CRASH_ONCE.clear()
        CRASH_ALWAYS.clear()
        HOLD.clear()


@operator("tally", description="Counts its calls (tests).")
async def tally(ctx):
    index = ctx.config.get("index")
    key = ctx.stage.id if index is None else f"{ctx.stage.id}[{index}]"
    with _lock:
        CALLS[key] += 1
        first = CALLS[key] == 1
    if key in CRASH_ALWAYS or (key in CRASH_ONCE and first):
        raise Crash(f"worker killed in {key}")
    if ctx.config.get("say"):
        ctx.log("info", ctx.config["say"], key=key)
    for token in ctx.config.get("tokens") or ():
        ctx.emit("stage.token", token)
        await asyncio.sleep(0)  # tokens arrive in separate turns, as from a model's stream
    if ctx.config.get("hold") and not await asyncio.to_thread(HOLD.wait, 10):
        raise RuntimeError(f"{key} was held for 10 s and the test never let it go")
    if ctx.config.get("sleep"):
        await asyncio.sleep(float(ctx.config["sleep"]))
    with _lock:
        DONE[key] += 1
    return {"stage": ctx.stage.id, "value": ctx.config.get("value")}


class TallyPlugin:
    @hookimpl
    def fm_register_components(self, register):
        register(tally)


def chain(pid: str, n: int, **config) -> dict:
    """A pipeline of ``n`` tally stages s1 -> s2 -> ... ."""
    stages = []
    for i in range(1, n + 1):
        stage = {"id": f"s{i}", "type": "tally", "config": dict(config, value=f"{{{{input.x}}}}-{i}")}
        if i > 1:
            stage["depends_on"] = [f"s{i - 1}"]
        stages.append(stage)
    return {"id": pid, "name": pid, "stages": stages}
