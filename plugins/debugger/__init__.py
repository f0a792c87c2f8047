"""Breakpoints on the executor's stage gate: the session a debugger front end (the editor's DAP adapter) drives.

A ``DebugSession`` is the stage gate of an ``Execution(gate=session)``: before each
stage renders its config (outside its timeout and retries, so a held
breakpoint never times a stage out or repeats on a retry) the session
decides whether to stop there:

- a breakpoint on the stage, optionally only in one foreach iteration
  (``iteration="2"`` or a nested path ``"2/0"``), with a condition in
  template syntax (``{{upstream.review.score}} < 0.5``) or the plain form
  (``review.output.score < 0.5``), and a hit count (``5``, ``>= 5``,
  ``% 2 == 0``: VS Code's hit conditions);
- a log point (``log="score {{upstream.review.score}}"``) writes a
  ``stage.log`` event and does not stop;
- ``step()`` stops at the next stage that reaches the gate, ``pause()`` at
  the next one to start, ``continue_()`` runs on, ``stop()`` cancels the run.

Parallel stages that reach a stop wait together; each stop is reported to
``on_stop(stop)`` (a ``Stop``: the point, the reason, the variables a
debugger shows) and resumed by the next command. This plugin registers no
hooks: it does nothing unless a host installs a session.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from flowmason.kernel.errors import ConfigError

__all__ = ["Breakpoint", "DebugSession", "Stop"]

_HIT = re.compile(r"^\s*(==|>=|<=|>|<|%)?\s*(\d+)\s*(?:==\s*(\d+))?\s*$")
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)


def hit_matches(condition: str | None, hits: int) -> bool:
    """VS Code's hit conditions: ``5`` (the 5th hit), ``>= 5``, ``% 2 == 0``."""
    if not condition:
        return True
    m = _HIT.match(condition)
    if m is None:
        raise ConfigError(f"hit condition '{condition}' is not understood", field="hitCondition",
                          hint="write a count (5), a comparison (>= 5) or a modulus (% 2 == 0)")
    op, n, rest = m.group(1) or "==", int(m.group(2)), m.group(3)
    if op == "%":
        return n > 0 and hits % n == int(rest or 0)
    return {"==": hits == n, ">=": hits >= n, "<=": hits <= n, ">": hits > n, "<": hits < n}[op]


@dataclass
class Breakpoint:
    stage: str
    condition: str | None = None
    hit: str | None = None
    log: str | None = None
    iteration: str | None = None
    hits: int = 0

    def __post_init__(self) -> None:
        hit_matches(self.hit, 1)  # a malformed hit condition is refused when set, not at the stop


@dataclass
class Stop:
    """Where a run stands while stopped: what a debugger shows as the paused frame."""

    point: Any
    reason: str  # "breakpoint" | "step" | "pause"
    resumed: asyncio.Future = field(repr=False, default=None)  # type: ignore[assignment]

    @property
    def stage(self) -> str:
        return self.point.stage.id

    def variables(self) -> dict[str, Any]:
        scope = self.point.scope
        return {"input": dict(scope.get("input") or {}), "upstream": dict(scope.get("upstream") or {}),
                "context": dict(scope.get("context") or {}), "variables": dict(scope.get("variables") or {}),
                "iteration": self.point.iteration, "stage": self.point.stage.model_dump(mode="json", exclude_none=True)}

    def evaluate(self, expression: str) -> Any:
        """Watch and hover: template syntax or the plain ``stage.output.field`` form."""
        return _evaluate(self.point, expression)


def _evaluate(point: Any, expression: str) -> Any:
    if "{{" in expression:
        return point.evaluate(expression)
    # the plain form: finished stages by id, each with its output
    from flowmason.kernel.templating import evaluate

    upstream = point.scope.get("upstream") or {}
    stages = {sid.replace("-", "_"): {"output": out} for sid, out in dict(upstream).items()}
    return evaluate(expression, {**point.scope, **stages})


class DebugSession:
    """Breakpoints, log points, step, pause, continue and stop over one run's stage gate."""

    def __init__(self, on_stop: Callable[[Stop], Any] | None = None) -> None:
        self.breakpoints: dict[str, list[Breakpoint]] = {}
        self.on_stop = on_stop
        self.stopped: list[Stop] = []
        self._stepping = False
        self._pausing = False
        self._execution: Any = None

    # -- what the front end sets --
    def set_breakpoints(self, stage: str, breakpoints: list[Breakpoint]) -> None:
        """Replace the stage's breakpoints (an empty list clears them)."""
        if breakpoints:
            self.breakpoints[stage] = list(breakpoints)
        else:
            self.breakpoints.pop(stage, None)

    def continue_(self) -> None:
        self._stepping = False
        self._release()

    def step(self) -> None:
        self._stepping = True
        self._release()

    def pause(self) -> None:
        self._pausing = True

    def stop(self) -> None:
        if self._execution is not None:
            self._execution.cancel()
        self._release()

    def _release(self) -> None:
        stops, self.stopped = self.stopped, []
        for s in stops:
            if not s.resumed.done():
                s.resumed.set_result(None)

    # -- the gate --
    def wants(self, stage: str, iteration: str | None) -> bool:
        """Whether the gate may stop at this stage: elsewhere the executor does not await it (stays fast)."""
        return self._stepping or self._pausing or stage in self.breakpoints

    async def __call__(self, point: Any) -> None:
        self._execution = point.execution
        reason = self._reason(point)
        if reason is None:
            return
        stop = Stop(point, reason, asyncio.get_running_loop().create_future())
        self.stopped.append(stop)
        if self.on_stop is not None:
            self.on_stop(stop)
        await stop.resumed

    def _reason(self, point: Any) -> str | None:
        if self._stepping:
            self._stepping = False
            return "step"
        if self._pausing:
            self._pausing = False
            return "pause"
        for bp in self.breakpoints.get(point.stage.id, ()):
            if bp.iteration is not None and bp.iteration != point.iteration:
                continue
            if bp.condition and not _evaluate(point, bp.condition):
                continue
            bp.hits += 1
            if not hit_matches(bp.hit, bp.hits):
                continue
            if bp.log is not None:
                point.execution.emit("stage.log", point.stage, {"level": "info", "message": _log_text(point, bp.log),
                                                                "data": {"logpoint": True}})
                continue
            return "breakpoint"
        return None


def _log_text(point: Any, message: str) -> str:
    return _TEMPLATE.sub(lambda m: str(point.evaluate("{{" + m.group(1) + "}}")), message)
