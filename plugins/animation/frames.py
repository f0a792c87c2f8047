"""Frames of a run: each stage's status, progress and duration over time, and a player.

A run is animated from *intervals*: for every stage, when it started, when
it settled and how it ended (``Track``). Intervals come from the stored
stage results (``tracks_from_results``) or live, from the executor's
listener events (``FrameRecorder``). A *frame* is the state at one moment:
every stage's status (pending / running / completed / failed / skipped),
its progress (the fraction of its own duration elapsed, or what the
component reported with ``ctx.emit("progress", {"fraction": ...})``), its
duration so far, and the run's overall progress. ``frames()`` lists one
frame per boundary; ``frame_at(t)`` computes any moment, which is what seek
needs. The HTML player (``html.py``) does the same computation in JS.

``Player`` plays frames against a clock with play / pause / seek and
0.5x / 1x / 2x / 4x speeds; the clock is injectable so it is testable
without sleeping.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

SPEEDS = (0.5, 1.0, 2.0, 4.0)
SETTLED = ("completed", "failed", "skipped", "cancelled")


@dataclass
class Track:
    """One stage's life in a run (times in ms from the run's start)."""

    stage_id: str
    start_ms: float | None = None
    end_ms: float | None = None
    status: str = "pending"  # the final (or current) status
    label: str = ""
    component_type: str = ""
    restored: bool = False  # settled in an earlier run this one replays
    marks: list[tuple[float, float]] = field(default_factory=list)  # reported (t_ms, fraction)
    detail: dict[str, Any] | None = None  # previews of input / output / error, for the HTML details panel

    def at(self, t: float) -> dict[str, Any]:
        """This stage's status, progress (0..1) and duration (ms) at ``t``."""
        if self.start_ms is None or t < self.start_ms:
            if self.status == "skipped" and self.end_ms is not None and t >= self.end_ms:
                return {"status": "skipped", "progress": 1.0, "duration_ms": 0.0}
            return {"status": "pending", "progress": 0.0, "duration_ms": 0.0}
        if self.end_ms is not None and t >= self.end_ms:
            return {"status": self.status if self.status in SETTLED else "completed", "progress": 1.0,
                    "duration_ms": round(self.end_ms - self.start_ms, 3)}
        reported = [f for (mt, f) in self.marks if mt <= t]
        if reported:
            progress = reported[-1]
        elif self.end_ms is not None and self.end_ms > self.start_ms:
            progress = (t - self.start_ms) / (self.end_ms - self.start_ms)
        else:
            progress = 0.0
        return {"status": "running", "progress": round(max(0.0, min(progress, 1.0)), 4),
                "duration_ms": round(t - self.start_ms, 3)}

    def to_dict(self) -> dict[str, Any]:
        d = {"id": self.stage_id, "label": self.label or self.stage_id, "type": self.component_type,
             "start": self.start_ms, "end": self.end_ms, "status": self.status}
        if self.restored:
            d["restored"] = True
        if self.marks:
            d["marks"] = [list(m) for m in self.marks]
        if self.detail:
            d["detail"] = self.detail
        return d


@dataclass
class Animation:
    """Tracks of one run plus its graph; the source of frames for every exporter."""

    run_id: str
    pipeline_id: str
    status: str
    duration_ms: float
    tracks: list[Track]
    edges: list[tuple[str, str]] = field(default_factory=list)

    def frame_at(self, t: float) -> dict[str, Any]:
        stages = {tr.stage_id: tr.at(t) for tr in self.tracks}
        settled = sum(1 for s in stages.values() if s["status"] in SETTLED)
        return {"t_ms": round(t, 3), "progress": round(settled / len(stages), 4) if stages else 1.0, "stages": stages}

    def boundaries(self) -> list[float]:
        times = {0.0, self.duration_ms}
        for tr in self.tracks:
            times.update(x for x in (tr.start_ms, tr.end_ms) if x is not None)
            times.update(mt for mt, _ in tr.marks)
        return sorted(t for t in times if 0 <= t <= self.duration_ms)

    def frames(self) -> list[dict[str, Any]]:
        """One frame at every boundary (a stage starting or settling, a progress report)."""
        return [self.frame_at(t) for t in self.boundaries()]

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "pipeline_id": self.pipeline_id, "status": self.status,
                "duration_ms": self.duration_ms, "stages": [t.to_dict() for t in self.tracks],
                "edges": [list(e) for e in self.edges]}


def _status(value: Any) -> str:
    return getattr(value, "value", value) or "pending"


PREVIEW_CHARS = 2000


def _preview(value: Any) -> str | None:
    if value is None:
        return None
    import json

    text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str, ensure_ascii=False)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + f"… ({len(text)} characters)"


def _detail(r: Any) -> dict[str, Any]:
    d = {"input": _preview(r.input), "output": _preview(r.output), "attempts": r.attempts}
    if r.error:
        d["error"] = str(r.error.get("message") or r.error)
    if r.usage:
        d["usage"] = r.usage
    if r.iteration is not None:
        d["iteration"] = r.iteration
    return d


def graph_edges(pipeline: Any, stage_ids: Iterable[str]) -> list[tuple[str, str]]:
    ids = set(stage_ids)
    if pipeline is None:
        return []
    return [(d, s.id) for s in pipeline.stages for d in s.depends_on if d in ids and s.id in ids]


def tracks_from_results(run: Any, stages: list[Any], pipeline: Any = None) -> Animation:
    """An Animation from a stored run and its stage results (foreach iterations fold into their stage)."""
    t0 = run.started_at or min((r.started_at for r in stages if r.started_at), default=0.0)
    tracks: dict[str, Track] = {}
    if pipeline is not None:
        for s in pipeline.stages:
            tracks[s.id] = Track(s.id, label=s.name or s.id, component_type=s.component_type)
    for r in stages:
        tr = tracks.setdefault(r.stage_id, Track(r.stage_id, component_type=r.component_type))
        tr.component_type = tr.component_type or r.component_type
        start = (r.started_at - t0) * 1000 if r.started_at else None
        end = (r.finished_at - t0) * 1000 if r.finished_at else None
        if start is not None and start < 0:  # restored from the run this one replays
            tr.restored = True
            start, end = 0.0, 0.0
        tr.start_ms = start if tr.start_ms is None or (start is not None and start < tr.start_ms) else tr.start_ms
        tr.end_ms = end if tr.end_ms is None or (end is not None and end > tr.end_ms) else tr.end_ms
        st = _status(r.status)
        tr.detail = _detail(r)  # the last result of the stage (its last iteration)
        if r.iteration is None:
            tr.status = st
            if st == "skipped":  # shown as skipped from the moment it was decided
                tr.start_ms = None
        elif tr.status != "failed":  # iterations fold: any failed iteration shows
            tr.status = "failed" if st == "failed" else "completed"
    duration = run.duration_ms or max((t.end_ms or 0 for t in tracks.values()), default=0.0)
    duration = max(duration, max((t.end_ms or 0 for t in tracks.values()), default=0.0))
    ordered = list(tracks.values())
    return Animation(run.id, run.pipeline_id, _status(run.status), round(duration, 3), ordered,
                     graph_edges(pipeline, tracks))


class FrameRecorder:
    """An executor listener (``run_pipeline(..., listeners=[rec])``) that records tracks live.

    ``animation()`` can be called during the run (stages still running have
    no end) or after it.
    """

    def __init__(self, pipeline: Any = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.pipeline = pipeline
        self.clock = clock
        self.t0: float | None = None
        self.run: Any = None
        self.tracks: dict[str, Track] = {}
        if pipeline is not None:
            for s in pipeline.stages:
                self.tracks[s.id] = Track(s.id, label=s.name or s.id, component_type=s.component_type)

    def _now(self) -> float:
        if self.t0 is None:
            self.t0 = self.clock()
        return round((self.clock() - self.t0) * 1000, 3)

    def __call__(self, kind: str, run: Any, stage: Any, data: Any) -> None:
        now = self._now()
        self.run = run
        if stage is None:
            return
        tr = self.tracks.setdefault(stage.id, Track(stage.id, label=stage.name or stage.id, component_type=stage.component_type))
        if kind == "stage.started":
            tr.start_ms = now if tr.start_ms is None else tr.start_ms
            tr.status = "running"
        elif kind in ("stage.finished", "stage.failed", "stage.skipped", "stage.cancelled"):
            tr.end_ms = now
            tr.status = kind.split(".", 1)[1].replace("finished", "completed")
            if tr.status == "skipped":
                tr.start_ms = None
        elif kind in ("progress", "stage.progress") and isinstance(data, dict):
            frac = data.get("fraction", data.get("progress"))
            if isinstance(frac, (int, float)):
                tr.marks.append((now, float(frac)))

    def animation(self) -> Animation:
        now = self._now() if self.t0 is not None else 0.0
        run = self.run
        status = _status(run.status) if run is not None else "pending"
        duration = now if status in ("running", "pending") else max([now] + [t.end_ms or 0 for t in self.tracks.values()])
        return Animation(run.id if run else "", run.pipeline_id if run else "", status, duration,
                         list(self.tracks.values()), graph_edges(self.pipeline, self.tracks))


class Player:
    """Plays an Animation: ``play``, ``pause``, ``seek(ms)``, ``speed`` in 0.5 / 1 / 2 / 4."""

    def __init__(self, animation: Animation, *, speed: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.animation = animation
        self.clock = clock
        self._pos = 0.0  # ms of run time at _since
        self._since: float | None = None  # clock when play began; None when paused
        self.speed = 1.0
        self.set_speed(speed)

    @property
    def playing(self) -> bool:
        return self._since is not None

    def position(self) -> float:
        if self._since is None:
            return self._pos
        pos = self._pos + (self.clock() - self._since) * 1000 * self.speed
        if pos >= self.animation.duration_ms:  # the end pauses the player
            self._pos, self._since = self.animation.duration_ms, None
            return self._pos
        return pos

    def play(self) -> None:
        if self._since is None:
            if self._pos >= self.animation.duration_ms:
                self._pos = 0.0  # play again from the start
            self._since = self.clock()

    def pause(self) -> None:
        self._pos = self.position()
        self._since = None

    def seek(self, t_ms: float) -> None:
        self._pos = max(0.0, min(float(t_ms), self.animation.duration_ms))
        if self._since is not None:
            self._since = self.clock()

    def set_speed(self, speed: float) -> None:
        if speed not in SPEEDS:
            from flowmason.kernel.errors import InputError

            raise InputError(f"speed {speed}x is not offered", field="speed",
                                 hint="use 0.5, 1, 2 or 4")
        self._pos = self.position()
        if self._since is not None:
            self._since = self.clock()
        self.speed = speed

    def frame(self) -> dict[str, Any]:
        return self.animation.frame_at(self.position())
