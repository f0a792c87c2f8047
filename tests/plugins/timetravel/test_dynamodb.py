"""Time travel on DynamoDB (moto's server on 127.0.0.1): snapshots, replay, what-if and retention go through the same contract."""
from __future__ import annotations

import pytest

from flowmason.kernel import plugins
from flowmason.kernel.runs import RunRepository
from flowmason.kernel.storage import open_store
from flowmason.plugins.timetravel.history import load_timeline
from flowmason.plugins.timetravel.replay import compare_runs, replay
from flowmason.plugins.timetravel.retention import set_retention

from .helpers import Components, pipeline, record, stage, story_pipeline


@pytest.fixture(scope="module")
def endpoint():
    pytest.importorskip("moto")
    from tests.support.dynamodb import local_dynamodb

    with local_dynamodb() as ep:
        yield ep


@pytest.fixture
def repo(endpoint):
    from tests.support.dynamodb import dynamodb_url

    plugins.reset(None, extra=[Components()])
    store = open_store(dynamodb_url(endpoint))
    yield RunRepository(store, "org#acme#")
    store.close()
    plugins.reset()


def test_snapshots_replay_and_what_if_on_dynamodb(repo):
    run = record(repo, story_pipeline(), {"topic": "owls", "style": "gothic"})
    tl = load_timeline(repo, run.id)
    assert tl.snapshots[-1].iteration == "completed" and len(tl.snapshots) == 10
    assert tl.pipeline is not None and tl.pipeline.key == "story"
    at = next(s.seq for s in tl.snapshots if s.stage_id == "draft" and s.describe()["kind"] == "stage.finished")
    plan, new = replay(repo, run.id, at, inputs={"style": "noir"})
    assert new.status.value == "completed" and sorted(plan.resume) == ["outline"]
    rows = {r["stage"]: r for r in compare_runs(repo, run.id, new.id)["stages"]}
    assert rows["outline"]["same_output"] and not rows["draft"]["same_output"]
    assert set_retention(repo, run.id, 3600) > 0


def test_iterations_and_extras_survive_the_dynamodb_codec(repo):
    p = pipeline(
        stage("a"),
        stage("loop", "foreach", ("a",), items=["x", "y", "z"], loop_stages=["body"]),
        stage("body", "tt-llm", prompt="say {{context.item}}"),
        {**stage("bad", "tt-fail", ("a",)), "on_error": "continue"},
        pid="mixed",
    )
    run = record(repo, p)
    assert run.status.value == "completed", run.error
    tl = load_timeline(repo, run.id)
    kinds = [(s.describe()["kind"], s.stage_id, s.describe().get("iteration")) for s in tl.snapshots]
    assert ("stage.failed", "bad", None) in kinds and tl.snapshots[-1].iteration == "completed"
    iterations = sorted(it for kind, sid, it in kinds if sid == "body" and kind == "stage.finished")
    assert len(iterations) == 3
    final = tl.state(tl.last)["stages"]
    assert sorted(k for k in final if k.startswith("body#")) == [f"body#{it}" for it in iterations]
    assert final[f"body#{iterations[0]}"]["output"]["prompt"].startswith("say ")
