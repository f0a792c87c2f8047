"""`fm debug ...` end to end through the real CLI entry point, on a real SQLite store."""
from __future__ import annotations

import io
import json

import pytest

from flowmason.kernel import plugins
from flowmason.kernel.cli import main
from flowmason.kernel.runs import RunRepository
from flowmason.kernel.storage import open_store
from flowmason.plugins import timetravel

from .helpers import Components, record, story_pipeline

INPUTS = {"topic": "owls", "style": "gothic"}


@pytest.fixture
def repo(tmp_path, monkeypatch):
    plugins.reset(None, extra=[Components()])
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    monkeypatch.setenv("FM_STORE", url)
    store = open_store(url)
    yield RunRepository(store)
    store.close()
    plugins.reset()


def fm(capsys, *args, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_timeline_state_diff(repo, capsys):
    run = record(repo, story_pipeline(), INPUTS)
    code, out, _ = fm(capsys, "debug", "timeline", run.id[:14])
    assert code == 0 and "stage.finished" in out and "review" in out and "snapshots kept until" in out
    code, out, _ = fm(capsys, "debug", "timeline", run.id, "--json")
    snaps = json.loads(out)["snapshots"]
    seq = next(s["seq"] for s in snaps if s["kind"] == "stage.finished" and s["stage_id"] == "draft")
    code, out, _ = fm(capsys, "debug", "state", run.id, str(seq), "--json")
    state = json.loads(out)
    assert state["stages"]["draft"]["status"] == "completed" and state["stages"]["final"]["status"] == "pending"
    code, out, _ = fm(capsys, "debug", "state", run.id, str(seq))
    assert code == 0 and "draft" in out and "completed" in out and "pending" in out
    code, out, _ = fm(capsys, "debug", "diff", f"{run.id}@1", str(seq))
    assert code == 0 and "draft.status: pending → completed" in out
    code, _, err = fm(capsys, "debug", "state", run.id, "99")
    assert code == 3 and "has no snapshot 99" in err and "fm debug timeline" in err


def test_step_back_and_forth_from_stdin(repo, capsys, monkeypatch):
    run = record(repo, story_pipeline(), INPUTS)
    code, out, _ = fm(capsys, "debug", "step", run.id, "--json", stdin="n\nn\np\nlast\nq\n", monkeypatch=monkeypatch)
    assert code == 0
    decoder, states, pos = json.JSONDecoder(), [], 0
    while pos < len(out):
        obj, pos = decoder.raw_decode(out, pos)
        states.append(obj)
        while pos < len(out) and out[pos].isspace():
            pos += 1
    assert [s["snapshot"]["seq"] for s in states] == [0, 1, 2, 1, len(json.loads(
        fm(capsys, "debug", "timeline", run.id, "--json")[1])["snapshots"]) - 1]


def test_what_if_and_replay(repo, capsys, tmp_path):
    run = record(repo, story_pipeline(), INPUTS)
    code, out, _ = fm(capsys, "debug", "what-if", run.id, "3", "--input", "style=noir", "--json")
    assert code == 0
    res = json.loads(out)
    assert res["status"] == "completed" and res["replay_of"]["changed_inputs"] == ["style"]
    rows = {r["stage"]: r for r in res["compare"]["stages"]}
    assert rows["outline"]["same_output"] and not rows["draft"]["same_output"]
    code, out, _ = fm(capsys, "debug", "what-if", run.id, "3", "--set", "review.prompt=Shorter please")
    assert code == 0 and "re-ran" in out and "review" in out
    code, _, err = fm(capsys, "debug", "what-if", run.id, "3")
    assert code == 2 and "needs at least one --input or --set" in err
    code, _, err = fm(capsys, "debug", "what-if", run.id, "3", "--set", "novalue")
    assert code == 2 and "is not KEY=VALUE" in err
    # replay against a pipeline file that changed since the run: refused, with the change listed
    changed = story_pipeline().model_dump(mode="json", exclude_none=True)
    changed["stages"][0]["config"]["text"] = "Different outline"
    path = tmp_path / "story.pipeline.json"
    path.write_text(json.dumps(changed))
    before = len(repo.list_runs(limit=100)[0])
    code, _, err = fm(capsys, "debug", "replay", run.id, "2", "--pipeline", str(path))
    assert code == 1 and "changed since run" in err and "stage 'outline': config.text changed" in err
    assert len(repo.list_runs(limit=100)[0]) == before
    path.write_text(json.dumps(story_pipeline().model_dump(mode="json", exclude_none=True)))
    code, out, _ = fm(capsys, "debug", "replay", run.id, "2", "--pipeline", str(path))
    assert code == 0 and "(completed)" in out
    code, out, _ = fm(capsys, "debug", "compare", run.id, res["run_id"])
    assert code == 0 and "draft" in out and "noir" in out


def test_retention_and_cleanup(repo, capsys, monkeypatch):
    run = record(repo, story_pipeline(), INPUTS)
    code, out, _ = fm(capsys, "debug", "retention", run.id, "--days", "0")
    assert code == 0 and "snapshots kept until" in out
    code, _, err = fm(capsys, "debug", "timeline", run.id)
    assert code == 3 and "removed by retention" in err
    code, out, _ = fm(capsys, "debug", "cleanup")
    assert code == 0 and out.startswith("removed ") and int(out.split()[1]) >= 1
    code, _, err = fm(capsys, "debug", "timeline", "run_nope")
    assert code == 3 and "no run with id 'run_nope'" in err



def test_retention_setting(repo, monkeypatch, caplog):
    import time

    from flowmason.plugins.timetravel.history import load_timeline

    monkeypatch.setattr(timetravel.RECORDER, "retention_s", None)
    monkeypatch.setenv("FM_SNAPSHOT_RETENTION_DAYS", "0.5")
    run = record(repo, story_pipeline(), INPUTS)
    assert load_timeline(repo, run.id).head["expires_at"] == pytest.approx(time.time() + 43200, abs=60)
    # a setting that is not a number is reported and the default used; the run is not stopped by it
    monkeypatch.setenv("FM_SNAPSHOT_RETENTION_DAYS", "soon")
    run = record(repo, story_pipeline(), INPUTS)
    assert run.status.value == "completed"
    assert "FM_SNAPSHOT_RETENTION_DAYS='soon' is not a number" in caplog.text
    assert load_timeline(repo, run.id).head["expires_at"] == pytest.approx(time.time() + 14 * 86400, abs=60)
