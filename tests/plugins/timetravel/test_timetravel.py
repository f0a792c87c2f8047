"""Time travel end to end on a real SQLite store: snapshots, state, diff, replay, what-if, retention, bad input."""
from __future__ import annotations

import json
import time

import pytest

from flowmason.kernel import plugins
from flowmason.kernel.errors import FlowMasonError, NotFoundError
from flowmason.kernel.model import StageStatus
from flowmason.kernel.runs import RunRepository
from flowmason.kernel.storage import open_store
from flowmason.plugins import timetravel
from flowmason.plugins.timetravel.history import (NoSnapshotsError, SnapshotExpiredError, diff_states, load_timeline,
                                                  parse_ref)
from flowmason.plugins.timetravel.recorder import tt_pk
from flowmason.plugins.timetravel.replay import PipelineChangedError, compare_runs, plan_replay, replay
from flowmason.plugins.timetravel.retention import purge, set_retention

from .helpers import Components, pipeline, record, stage, story_pipeline

INPUTS = {"topic": "owls", "style": "gothic"}


@pytest.fixture
def comps():
    c = Components()
    plugins.reset(None, extra=[c])
    yield c
    plugins.reset()


@pytest.fixture
def repo(tmp_path, comps):
    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    yield RunRepository(store)
    store.close()


def all_items(store):
    return sorted((i.pk, i.sk, json.dumps(i.data, sort_keys=True)) for i in store.scan_all())


def seq_of(tl, kind, stage_id):
    return next(s.seq for s in tl.snapshots if s.describe()["kind"] == kind and s.stage_id == stage_id)


def test_a_snapshot_at_every_stage_boundary(repo):
    run = record(repo, story_pipeline(), INPUTS)
    assert run.status.value == "completed"
    tl = load_timeline(repo, run.id)
    kinds = [(s.describe()["kind"], s.stage_id) for s in tl.snapshots]
    assert kinds[0] == ("run.started", None)
    assert kinds[-1] == ("run.finished", None)
    assert tl.snapshots[-1].iteration == "completed"
    for sid in ("outline", "draft", "review", "final"):
        assert kinds.index(("stage.started", sid)) < kinds.index(("stage.finished", sid))
    assert len(tl.snapshots) == 2 + 2 * 4
    assert [s.seq for s in tl.snapshots] == list(range(len(tl.snapshots)))
    times = [s.t_ms for s in tl.snapshots]
    assert times == sorted(times)


def test_state_at_a_snapshot_has_inputs_outputs_usage(repo):
    run = record(repo, story_pipeline(), INPUTS)
    tl = load_timeline(repo, run.id)
    at = seq_of(tl, "stage.started", "review")
    st = tl.state(at)
    assert st["run"]["status"] == "running"
    assert st["run"]["inputs"] == INPUTS
    assert st["stages"]["outline"]["status"] == "completed"
    assert st["stages"]["draft"]["status"] == "completed"
    assert st["stages"]["review"]["status"] == "running"
    assert st["stages"]["final"]["status"] == "pending"
    assert "output" not in st["stages"]["review"]
    # the review's rendered prompt is known when it starts
    assert st["stages"]["review"]["input"]["prompt"].startswith("Review this: Answer:")
    draft = st["stages"]["draft"]
    assert draft["input"]["prompt"] == "Write a story: Outline about owls in gothic style"
    assert draft["output"]["text"] == "Answer: style gothic in owls about Outline story: a Write"
    # usage is the running total of the stages settled so far (only the draft)
    assert st["usage"]["input_tokens"] == 9
    final = tl.state(tl.last)
    assert final["run"]["status"] == "completed"
    assert final["usage"]["input_tokens"] == 9 + len(draft["output"]["text"].split()) + 2
    assert final["counts"] == {"completed": 4}


def test_step_back_and_forward_clamps(repo):
    run = record(repo, story_pipeline(), INPUTS)
    tl = load_timeline(repo, run.id)
    assert tl.step(0, -1) == 0
    assert tl.step(3, 1) == 4
    assert tl.step(3, -2) == 1
    assert tl.step(tl.last, 5) == tl.last
    with pytest.raises(NotFoundError, match="has no snapshot 99"):
        tl.step(99, 1)


def test_diff_of_two_snapshots(repo):
    run = record(repo, story_pipeline(), INPUTS)
    tl = load_timeline(repo, run.id)
    a, b = seq_of(tl, "stage.finished", "outline"), seq_of(tl, "stage.finished", "review")
    d = diff_states(tl.state(a), tl.state(b))
    assert set(d["stages"]) == {"draft", "review"}
    assert d["stages"]["draft"]["status"] == {"a": "pending", "b": "completed"}
    assert d["stages"]["review"]["output"]["b"]["text"].startswith("Answer:")
    assert d["usage"]["input_tokens"] > 0
    assert d["elapsed_ms"] >= 0
    assert diff_states(tl.state(b), tl.state(b))["stages"] == {}


def test_failed_and_skipped_stages_are_snapshotted(repo):
    p = pipeline(
        stage("a"),
        {**stage("bad", "tt-fail", ("a",), message="nope"), "on_error": "skip"},
        stage("after", deps=("bad",)),
        pid="failing",
    )
    run = record(repo, p)
    tl = load_timeline(repo, run.id)
    kinds = {(s.describe()["kind"], s.stage_id) for s in tl.snapshots}
    assert ("stage.failed", "bad") in kinds
    assert ("stage.skipped", "after") in kinds
    st = tl.state(tl.last)
    assert st["stages"]["bad"]["status"] == "failed"
    assert st["stages"]["bad"]["error"]["message"].endswith("nope")
    assert st["stages"]["after"]["status"] == "skipped"


def test_unrecorded_runs_get_no_snapshots(comps, monkeypatch):
    import asyncio

    from flowmason.kernel.executor import run_pipeline

    added = []
    from flowmason.plugins.timetravel.recorder import _RunLog

    monkeypatch.setattr(_RunLog, "add", lambda *a, **k: added.append(a))
    run = asyncio.run(run_pipeline(story_pipeline(), INPUTS))
    assert run.status.value == "completed"
    assert added == []


def test_replay_from_a_snapshot_reruns_only_later_stages(repo, comps):
    run = record(repo, story_pipeline(), INPUTS)
    tl = load_timeline(repo, run.id)
    at = seq_of(tl, "stage.finished", "draft")
    before = dict(comps.calls)
    plan, new = replay(repo, run.id, at)
    assert new.status.value == "completed"
    assert plan.rerun == ["review", "final"]
    assert sorted(plan.resume) == ["draft", "outline"]
    # outline and draft were not called again; review and final were
    assert comps.calls["outline"] == before["outline"] and comps.calls["draft"] == before["draft"]
    assert comps.calls["review"] == before["review"] + 1
    assert new.output == run.output
    assert new.metadata["replay_of"]["run_id"] == run.id
    # the replayed run is complete on its own and has its own timeline
    assert {r.stage_id for r in repo.stage_results(new.id)} == {"outline", "draft", "review", "final"}
    tl2 = load_timeline(repo, new.id)
    restored = [s.stage_id for s in tl2.snapshots if s.describe()["kind"] == "stage.restored"]
    assert sorted(restored) == ["draft", "outline"]
    assert tl2.state(tl2.last)["stages"]["outline"]["restored"] is True
    cmp = compare_runs(repo, run.id, new.id)
    assert cmp["same_output"] and all(r["same_output"] for r in cmp["stages"])


def test_what_if_changed_input_reruns_the_stages_that_read_it(repo, comps):
    run = record(repo, story_pipeline(), INPUTS)
    tl = load_timeline(repo, run.id)
    at = seq_of(tl, "stage.finished", "review")
    plan, new = replay(repo, run.id, at, inputs={"style": "noir"})
    # draft reads input.style, so it and everything after it run again; outline does not read it
    assert plan.changed_inputs == ["style"]
    assert sorted(plan.resume) == ["outline"]
    assert new.inputs == {"topic": "owls", "style": "noir"}
    cmp = compare_runs(repo, run.id, new.id)
    rows = {r["stage"]: r for r in cmp["stages"]}
    assert rows["outline"]["same_output"]
    assert not rows["draft"]["same_output"]
    assert "noir" in rows["draft"]["b"]["input"]["prompt"]
    assert not cmp["same_output"]


def test_what_if_changed_stage_config(repo, comps):
    run = record(repo, story_pipeline(), INPUTS)
    tl = load_timeline(repo, run.id)
    at = seq_of(tl, "stage.finished", "final")
    plan, new = replay(repo, run.id, at, stage_changes={"review": {"prompt": "Critique: {{upstream.draft.text}}"}})
    assert sorted(plan.resume) == ["draft", "outline"]
    assert plan.changed_stages == ["review"]
    results = {r.stage_id: r for r in repo.stage_results(new.id)}
    assert results["review"].input["prompt"].startswith("Critique: Answer:")
    assert results["final"].output != {r.stage_id: r for r in repo.stage_results(run.id)}["final"].output


def test_bad_input_changes_nothing_in_the_store(repo):
    run = record(repo, story_pipeline(), INPUTS)
    before = all_items(repo.store)
    with pytest.raises(NotFoundError, match="no run with id 'run_nope'"):
        replay(repo, "run_nope", 1)
    with pytest.raises(NotFoundError, match="has no snapshot 500") as exc:
        replay(repo, run.id, 500)
    assert "fm debug timeline" in exc.value.hint
    with pytest.raises(NotFoundError, match="no stage 'reveiw'") as exc:
        replay(repo, run.id, 3, stage_changes={"reveiw": {"prompt": "x"}})
    assert "review" in exc.value.hint
    changed = story_pipeline()
    changed.stages[1].config["prompt"] = "Write a poem: {{upstream.outline.text}}"
    changed.stages.append(changed.stages[0].model_copy(update={"id": "extra"}))
    with pytest.raises(PipelineChangedError) as exc:
        replay(repo, run.id, 3, current=changed)
    text = str(exc.value)
    assert "changed since run" in text
    assert "stage 'extra' was added" in text
    assert "stage 'draft': config.prompt changed" in text
    with pytest.raises(FlowMasonError):  # a change that makes the pipeline invalid is refused before any write
        replay(repo, run.id, 3, stage_changes={"draft": {"depends_on": ["nowhere"]}})
    assert all_items(repo.store) == before
    # the unchanged current pipeline is accepted
    plan = plan_replay(repo, run.id, 3, current=story_pipeline())
    assert plan.seq == 3


def test_snapshots_removed_by_retention(repo, monkeypatch):
    monkeypatch.setattr(timetravel.RECORDER, "retention_s", 0.2)
    run = record(repo, story_pipeline(), INPUTS)
    assert load_timeline(repo, run.id).last > 0
    deadline = time.time() + 5
    while time.time() < deadline and repo.store.query(tt_pk("", run.id), prefix="log#").items:
        time.sleep(0.05)
    with pytest.raises(SnapshotExpiredError, match="removed by retention"):
        load_timeline(repo, run.id)
    before = all_items(repo.store)
    with pytest.raises(SnapshotExpiredError):
        replay(repo, run.id, 1)
    assert all_items(repo.store) == before
    removed = purge(repo.store)
    assert removed >= 2  # the log chunk (with the head) and the pipeline definition
    # the run itself is still there, and the marker still explains
    assert repo.get_run(run.id).status.value == "completed"
    with pytest.raises(SnapshotExpiredError):
        load_timeline(repo, run.id)


def test_retention_can_be_extended(repo, monkeypatch):
    monkeypatch.setattr(timetravel.RECORDER, "retention_s", 60)
    run = record(repo, story_pipeline(), INPUTS)
    expires = set_retention(repo, run.id, 30 * 86400)
    head = repo.store.query(tt_pk("", run.id), prefix="log#").items[0]
    assert head.expires_at == pytest.approx(expires) and head.data["head"]["expires_at"] == pytest.approx(expires)
    assert all(i.expires_at == pytest.approx(expires) for i in repo.store.query(tt_pk("", run.id), prefix="log#").items)


def test_run_without_snapshots_says_so(repo):
    plugins.reset("-timetravel", extra=[Components()])
    run = record(repo, story_pipeline(), INPUTS)
    with pytest.raises(NoSnapshotsError, match="has no snapshots"):
        load_timeline(repo, run.id)


def test_snapshot_references():
    assert parse_ref("run_1@4") == ("run_1", 4)
    assert parse_ref("7", default_run="run_1") == ("run_1", 7)
    with pytest.raises(FlowMasonError, match="names no run"):
        parse_ref("7")
    with pytest.raises(FlowMasonError, match="not a snapshot number"):
        parse_ref("run_1@x")


def test_parallel_stages_and_chunked_log(repo, monkeypatch):
    monkeypatch.setattr(timetravel.RECORDER, "chunk_entries", 16)
    p = pipeline(*[stage(f"s{i}", "tt-sleep", seconds=0.001) for i in range(40)], stage("join", deps=tuple(f"s{i}" for i in range(40))), pid="wide")
    run = record(repo, p)
    tl = load_timeline(repo, run.id)
    assert len(tl.snapshots) == 2 + 2 * 41
    logged = 2 + 41  # run start and end, one settle per stage (starts come from the results)
    assert len(repo.store.query(tt_pk("", run.id), prefix="log#").items) == -(-logged // 16)
    assert tl.state(tl.last)["counts"] == {"completed": 41}
    assert {r.status for r in repo.stage_results(run.id)} == {StageStatus.COMPLETED}


def test_a_resumed_run_continues_its_timeline(repo):
    import asyncio

    from flowmason.kernel.executor import Execution, plan_for
    from flowmason.kernel.model import RunStatus

    p = pipeline(stage("a"), stage("b", "tt-fail", ("a",), fail_times=1), pid="resumable")
    first = record(repo, p)
    assert first.status is RunStatus.FAILED
    # another invocation picks the run up from its checkpoint (as the worker does after a pause)
    run = repo.get_run(first.id)
    run.status, run.error = RunStatus.PENDING, None
    done = {k: v for k, v in repo.checkpoint(run.id).items() if v.status is StageStatus.COMPLETED}
    asyncio.run(Execution(plan_for(p), run=run, recorder=repo, resume=done).execute())
    tl = load_timeline(repo, run.id)
    kinds = [(s.describe()["kind"], s.stage_id) for s in tl.snapshots]
    assert kinds == [("run.started", None), ("stage.started", "a"), ("stage.finished", "a"),
                     ("stage.started", "b"), ("stage.failed", "b"), ("run.finished", None),
                     ("run.started", None), ("stage.started", "b"), ("stage.finished", "b"), ("run.finished", None)]
    assert [s.seq for s in tl.snapshots] == list(range(10))
    assert tl.state(5)["run"]["status"] == "failed"
    assert tl.state(7)["run"]["status"] == "running"
    assert tl.state(9)["stages"]["b"]["status"] == "completed"


def test_expired_snapshots_are_purged_automatically(repo, monkeypatch, tmp_path):
    import sqlite3

    monkeypatch.setattr(timetravel.RECORDER, "retention_s", 0.05)
    monkeypatch.setattr(timetravel.RECORDER, "_purged", {repo.store.url: time.time()})  # purged just now
    old = record(repo, story_pipeline(), INPUTS)
    db = sqlite3.connect(tmp_path / "runs.db")
    count = f"SELECT count(*) FROM items WHERE pk = 'tt#{old.id}'"
    assert db.execute(count).fetchone()[0] >= 2  # its log and expiry marker, physically there
    time.sleep(0.1)
    monkeypatch.setattr(timetravel.RECORDER, "_purged", {})  # as in a new process
    record(repo, story_pipeline(), INPUTS)  # a run's end purges what has expired
    assert db.execute(count).fetchone()[0] == 1  # only the marker, which outlives the snapshots
    with pytest.raises(SnapshotExpiredError):
        load_timeline(repo, old.id)
    db.close()


def test_replay_and_state_of_a_run_with_600_kb_values_give_them_back_whole(repo, comps):
    big = "x" * 600_000
    p = pipeline(stage("first", text="{{input.big}}"), stage("second", deps=("first",), text="{{upstream.first.text}}!"),
                 pid="big")
    run = record(repo, p, {"big": big})
    assert run.status.value == "completed" and run.output == {"text": big + "!"}
    tl = load_timeline(repo, run.id)
    state = tl.state(seq_of(tl, "stage.finished", "first"))
    assert state["stages"]["first"]["output"] == {"text": big}
    plan, new = replay(repo, run.id, seq_of(tl, "stage.finished", "first"))
    assert plan.rerun == ["second"] and new.status.value == "completed"
    assert new.output == {"text": big + "!"}
    assert {r.stage_id: r.output for r in repo.stage_results(new.id)} == {"first": {"text": big}, "second": {"text": big + "!"}}
