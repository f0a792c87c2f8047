"""Frames, the player, the live frame recorder, the exporters, `fm export` and `fm watch`."""
from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from flowmason.kernel.errors import FlowMasonError, NotFoundError
from flowmason.kernel.executor import run_pipeline
from flowmason.kernel.plugins import get_registry
from flowmason.plugins.animation.exporters import load_run
from flowmason.plugins.animation.frames import Animation, FrameRecorder, Player, Track, tracks_from_results
from flowmason.plugins.animation.view import watch

from tests.plugins.timetravel.helpers import pipeline, record, stage



class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def toy():
    return Animation("r1", "p", "completed", 1000.0, [
        Track("a", 0.0, 400.0, "completed"),
        Track("b", 400.0, 1000.0, "failed", marks=[(500.0, 0.25)]),
        Track("c", None, 400.0, "skipped"),
    ], [("a", "b"), ("a", "c")])


def test_track_states_over_time():
    anim = toy()
    f = anim.frame_at(200.0)
    assert f["stages"]["a"] == {"status": "running", "progress": 0.5, "duration_ms": 200.0}
    assert f["stages"]["b"]["status"] == "pending"
    assert f["stages"]["c"]["status"] == "pending"
    assert f["progress"] == 0.0
    f = anim.frame_at(450.0)
    assert f["stages"]["a"]["status"] == "completed" and f["stages"]["a"]["duration_ms"] == 400.0
    assert f["stages"]["b"]["progress"] == pytest.approx(50 / 600, abs=1e-4)  # no report yet: elapsed fraction
    assert f["stages"]["c"]["status"] == "skipped"
    assert anim.frame_at(600.0)["stages"]["b"]["progress"] == 0.25  # what the component reported
    end = anim.frame_at(1000.0)
    assert end["stages"]["b"]["status"] == "failed" and end["progress"] == 1.0
    assert [f["t_ms"] for f in anim.frames()] == [0.0, 400.0, 500.0, 1000.0]


def test_player_play_pause_seek_speeds():
    clock = Clock()
    p = Player(toy(), clock=clock)
    assert not p.playing and p.position() == 0
    p.play()
    clock.t += 0.1
    assert p.position() == pytest.approx(100.0)
    p.set_speed(4.0)
    clock.t += 0.1
    assert p.position() == pytest.approx(500.0)
    p.pause()
    clock.t += 5
    assert p.position() == pytest.approx(500.0)
    assert p.frame()["stages"]["b"]["status"] == "running"
    p.seek(250.0)
    p.set_speed(0.5)
    p.play()
    clock.t += 0.2
    assert p.position() == pytest.approx(350.0)
    clock.t += 100  # past the end: stops there
    assert p.position() == 1000.0 and not p.playing
    p.play()  # from the end, plays again from the start
    assert p.position() == 0.0
    p.seek(5000)
    assert p.position() == 1000.0
    with pytest.raises(FlowMasonError, match="not offered"):
        p.set_speed(3.0)


def test_frames_from_a_stored_run(recorded):
    repo, run = recorded
    r, stages, pipe = load_run(repo, run.id)
    assert pipe is not None and pipe.key == "diamond"  # the definition time travel stored
    anim = tracks_from_results(r, stages, pipe)
    by = {t.stage_id: t for t in anim.tracks}
    assert [t.stage_id for t in anim.tracks] == ["fetch", "summarise", "translate", "merge", "flaky", "after-flaky"]
    assert by["fetch"].end_ms <= by["summarise"].start_ms + 1
    assert by["merge"].start_ms >= max(by["summarise"].end_ms, by["translate"].end_ms) - 1
    assert by["flaky"].status == "failed" and by["after-flaky"].status == "skipped"
    assert ("fetch", "summarise") in anim.edges and len(anim.edges) == 6
    statuses = [f["stages"]["summarise"]["status"] for f in anim.frames()]
    assert statuses[0] == "pending" and "running" in statuses and statuses[-1] == "completed"


def test_frame_recorder_listens_live(repo):
    p = pipeline(stage("a", "tt-sleep", seconds=0.02), stage("b", "tt-text", ("a",), text="x"), pid="live")
    rec = FrameRecorder(p)
    run = asyncio.run(run_pipeline(p, {}, listeners=[rec]))
    anim = rec.animation()
    assert anim.run_id == run.id and anim.status == "completed"
    by = {t.stage_id: t for t in anim.tracks}
    assert by["a"].end_ms - by["a"].start_ms >= 15
    assert by["b"].start_ms >= by["a"].end_ms
    assert anim.frame_at(anim.duration_ms)["progress"] == 1.0
    # reported progress is recorded as marks
    rec2 = FrameRecorder()
    rec2("stage.started", run, p.stages[0], {})
    rec2("progress", run, p.stages[0], {"fraction": 0.4})
    assert rec2.animation().tracks[0].marks[0][1] == 0.4
    assert rec2.animation().frame_at(rec2.animation().duration_ms)["stages"]["a"]["progress"] == 0.4


def test_exporters_registered_and_well_formed(recorded):
    repo, run = recorded
    r, stages, pipe = load_run(repo, run.id)
    exporters = get_registry().exporters
    assert {"json", "html", "markdown", "mermaid", "svg"} <= set(exporters)
    data = json.loads(exporters["json"](r, stages, pipe))
    assert data["run"]["id"] == run.id
    assert data["frames"][-1]["progress"] == 1.0
    assert len(data["animation"]["stages"]) == 6
    svg = exporters["svg"](r, stages, pipe)
    root = ET.fromstring(svg)
    groups = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "fm-stage"]
    assert {g.get("data-stage"): g.get("data-status") for g in groups}["flaky"] == "failed"
    mm = exporters["mermaid"](r, stages, pipe)
    assert mm.startswith("flowchart LR\n")
    assert "s_after_flaky" in mm and "s_flaky --> s_after_flaky" in mm and ":::failed" in mm
    md = exporters["markdown"](r, stages, pipe)
    assert f"# Run `{run.id}`" in md and "```mermaid" in md and "| `flaky` | tt-fail | failed |" in md
    page = exporters["html"](r, stages, pipe)
    assert "<script src" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_html_escapes_stage_outputs(repo):
    p = pipeline(stage("x", text="</script><script>alert(1)</script>"), pid="esc")
    run = record(repo, p)
    r, stages, pipe = load_run(repo, run.id)
    page = get_registry().exporters["html"](r, stages, pipe)
    assert page.count("</script>") == 3  # the two data blocks and the player, nothing from the output


def test_fm_export_writes_files_and_rejects_bad_input(recorded, tmp_path, monkeypatch, capsys):
    from flowmason.kernel.cli import main

    repo, run = recorded
    monkeypatch.setenv("FM_STORE", repo.store.url if repo.store.url else "")
    out = tmp_path / "run.html"
    with pytest.raises(SystemExit) as exc:
        main(["export", run.id, "--format", "html", "-o", str(out)])
    assert exc.value.code in (0, None)
    assert out.read_text().startswith("<!doctype html>")
    with pytest.raises(SystemExit) as exc:
        main(["export", run.id[:12], "--format", "mermaid"])
    assert "flowchart LR" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["export", run.id, "--format", "pdf"])
    assert exc.value.code == 2
    assert "unknown export format 'pdf'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["export", "run_missing", "--format", "html"])
    assert "no run with id 'run_missing'" in capsys.readouterr().err


def test_watch_follows_a_live_run(repo):
    p = pipeline(*[stage(f"s{i}", "tt-sleep", tuple([f"s{i-1}"] if i else []), seconds=0.15) for i in range(4)], pid="slow")
    done = threading.Event()
    holder = {}

    def go():
        holder["run"] = record(repo, p)
        done.set()

    from flowmason.kernel.runs import RunRepository

    started = threading.Thread(target=go)
    started.start()
    try:
        run_id = None
        for _ in range(200):
            items, _ = repo.list_runs(limit=1)
            if items:
                run_id = items[0]["id"]
                break
            time.sleep(0.01)
        assert run_id is not None
        out = io.StringIO()
        status = watch(RunRepository(repo.store), run_id, interval=0.05, out=out)
    finally:
        started.join(10)
    assert status == "completed"
    lines = out.getvalue().splitlines()
    assert [ln.split()[1] for ln in lines[:-1]] == ["s0", "s1", "s2", "s3"]
    assert lines[-1].startswith(f"run {run_id} completed")


def test_watch_bad_input_and_timeout(repo):
    with pytest.raises(NotFoundError):
        watch(repo, "run_nope", interval=0.01, out=io.StringIO())
    from flowmason.kernel.model import Run, RunStatus

    stuck = Run(pipeline_id="p", status=RunStatus.RUNNING)
    repo.run_started(stuck)
    with pytest.raises(FlowMasonError, match="still running after"):
        watch(repo, stuck.id, interval=0.01, timeout=0.05, out=io.StringIO())


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_watch_on_a_terminal_draws_the_table(recorded):
    repo, run = recorded
    out = Terminal()
    assert watch(repo, run.id, interval=0.01, out=out) == "completed"
    text = out.getvalue()
    assert "summarise" in text and "after-flaky" in text and "skipped" in text


def test_fm_play_and_fm_watch_commands(recorded, monkeypatch, capsys):
    from flowmason.kernel.cli import main

    repo, run = recorded
    monkeypatch.setenv("FM_STORE", repo.store.url)
    with pytest.raises(SystemExit) as exc:
        main(["play", run.id, "--speed", "4"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert "diamond" in out and "100%" in out and "merge" in out
    with pytest.raises(SystemExit) as exc:
        main(["play", run.id, "--speed", "3"])
    assert exc.value.code == 2 and "speed 3.0x is not offered" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["watch", run.id, "--interval", "0.05"])
    assert exc.value.code in (0, None)
    assert f"run {run.id} completed" in capsys.readouterr().out
