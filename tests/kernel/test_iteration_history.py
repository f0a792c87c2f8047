"""Run history keeps every stage instance under its full iteration path, and resume reuses only the same instance.

Pipelines: tests/fixtures/nested (foreach in foreach, trycatch and router
in foreach, a trycatch at the top), run with `fm run` and through the HTTP
API into real SQLite stores; records are counted through the store.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from flowmason.kernel.executor import Execution, plan_for
from flowmason.kernel.model import RunStatus, StageStatus, parse_pipeline
from flowmason.kernel.runs import RunRepository
from flowmason.kernel.storage import open_store

from tests.kernel.helpers import P, S
from tests.plugins.http_api.conftest import make_server, wait_result  # noqa: F401 - the shared API fixture
from tests.support.cli import fm

NESTED = Path(__file__).resolve().parent.parent / "fixtures" / "nested"


def doc(name: str) -> dict:
    return json.loads((NESTED / f"{name}.pipeline.json").read_text())


def records(url: str, run_id: str, ns: str = "") -> dict[str, dict]:
    """``stage#...`` sort key (without the prefix) -> stored record, for one run."""
    store = open_store(url)
    try:
        return {i.sk[len("stage#"):]: i.data for i in store.query_all(f"{ns}run#{run_id}", prefix="stage#")}
    finally:
        store.close()


def fm_run(capsys, url: str, name: str, inputs: dict) -> tuple[str, dict]:
    code, out, err = fm(capsys, "--store", url, "run", str(NESTED / f"{name}.pipeline.json"), "--input", json.dumps(inputs))
    assert code == 0, err
    (run_id,) = {w for w in err.split() if w.startswith("run_")}
    return run_id, json.loads(out)


@pytest.mark.parametrize("parallel", [False, True])
def test_foreach_in_foreach_keeps_all_four_cells(tmp_path, capsys, parallel):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    inputs = {**doc("loop-in-loop")["sample_input"], "parallel": parallel}
    run_id, out = fm_run(capsys, url, "loop-in-loop", inputs)
    assert out["results"][1]["results"][0]["result"] == {"r": "r1", "c": "d", "i": 1, "j": 0}
    recs = records(url, run_id)
    cells = {k: v["output"]["result"]["c"] for k, v in recs.items() if k.startswith("cell#")}
    assert cells == {"cell#0/0": "a", "cell#0/1": "b", "cell#0/2": "c", "cell#1/0": "d"}
    assert {recs[k]["iteration"] for k in cells} == {"0/0", "0/1", "0/2", "1/0"}
    assert sorted(k for k in recs if k.startswith("inner")) == ["inner#0", "inner#1", "inner#2"]
    code, shown, _ = fm(capsys, "--store", url, "runs", "show", run_id)
    assert code == 0 and "×4 iterations" in shown and "cell[0/2]" in shown and "cell[1/0]" in shown


def test_trycatch_and_router_inside_foreach_are_labelled_with_their_iteration(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    run_id, out = fm_run(capsys, url, "trycatch-in-loop", doc("trycatch-in-loop")["sample_input"])
    assert [r["status"] for r in out["results"]] == ["success", "recovered", "success", "recovered"]
    recs = records(url, run_id)
    status = {k: v["status"] for k, v in recs.items()}
    assert status == {"loop": "completed", **{f"tc#{i}": "completed" for i in range(4)},
                      "risky#0": "completed", "risky#1": "failed", "risky#2": "completed", "risky#3": "failed",
                      "recover#1": "completed", "recover#3": "completed"}
    assert recs["recover#3"]["output"]["result"]["item"] == "four"
    assert [k for k, v in recs.items() if v["iteration"] is None] == ["loop"]
    code, shown, _ = fm(capsys, "--store", url, "runs", "show", run_id)
    assert code == 0 and "×4 iterations (2 completed, 2 failed)" in shown and "risky[3]" in shown

    run_id, out = fm_run(capsys, url, "router-in-loop", doc("router-in-loop")["sample_input"])
    assert [r["result"] for r in out["results"]] == ["small 1", "big 9", "small 3", "big 7"]
    recs = records(url, run_id)
    assert {k: v["status"] for k, v in recs.items() if k.startswith(("big#", "small#"))} == {
        "big#0": "skipped", "big#1": "completed", "big#2": "skipped", "big#3": "completed",
        "small#0": "completed", "small#1": "skipped", "small#2": "completed", "small#3": "skipped"}
    assert sorted(k for k in recs if k.startswith(("route#", "join#"))) == [f"{s}#{i}" for s in ("join", "route") for i in range(4)]


def test_the_http_api_records_the_same_instances(make_server, tmp_path):  # noqa: F811 - the fixture imported above
    client = make_server()
    url = f"sqlite:///{tmp_path / 'api.db'}"
    expected = {"loop-in-loop": ["cell#0/0", "cell#0/1", "cell#0/2", "cell#1/0"],
                "trycatch-in-loop": ["risky#0", "risky#1", "risky#2", "risky#3"]}
    for name, keys in expected.items():
        pipeline = doc(name)
        r = client.post("/runs", json={"pipeline": pipeline, "inputs": {**pipeline["sample_input"], "parallel": True}})
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]
        assert wait_result(client, run_id)["status"] == "completed"
        stem = keys[0].split("#")[0] + "#"
        assert sorted(k for k in records(url, run_id) if k.startswith(stem)) == keys


# -- resume: the same instance only --

def recorded(repo: RunRepository, pipeline, inputs):
    run = asyncio.run(Execution(plan_for(pipeline), inputs, recorder=repo).execute())
    return run, {(r.stage_id if r.iteration is None else f"{r.stage_id}#{r.iteration}"): r
                 for r in repo.stage_results(run.id)}


def resume(repo: RunRepository, pipeline, inputs, kept):
    return asyncio.run(Execution(plan_for(pipeline), inputs, recorder=repo, resume=kept).execute())


def test_resume_inside_a_top_level_trycatch_sees_the_failure_again(repo):
    pipeline = parse_pipeline(doc("trycatch"))
    first, results = recorded(repo, pipeline, {"x": "two"})
    assert first.output["result"]["status"] == "recovered" and results["risky"].status is StageStatus.FAILED
    # the process died after the try stage failed, before trycatch settled: only `risky` was checkpointed
    again = resume(repo, pipeline, {"x": "two"}, {"risky": results["risky"]})
    assert again.status is RunStatus.COMPLETED and again.output["result"]["status"] == "recovered"


def test_a_failure_that_stopped_the_run_runs_again_and_a_tolerated_one_is_kept(probe, repo):
    p = P(S("a", "t-fail", fail_times=1), S("b", deps=["a"], value="after"))
    with pytest.raises(Exception):
        recorded(repo, p, {})
    (summary,), _ = repo.list_runs()
    kept = repo.checkpoint(summary["id"])
    assert kept["a"].status is StageStatus.FAILED
    r = resume(repo, p, {}, kept)
    assert r.output["value"] == "after" and probe.calls["a"] == 2  # run again: it succeeds on its second call
    tolerant = P(S("a", "t-fail"), S("b", deps=["a"], value="after"), id="tolerant")
    tolerant.stages[0].on_error = "continue"
    _, results = recorded(repo, tolerant, {})
    calls = probe.calls["a"]
    assert resume(repo, tolerant, {}, {"a": results["a"]}).output["value"] == "after"
    assert probe.calls["a"] == calls  # its failure let the run go on: kept


def test_resume_reuses_an_iteration_result_only_in_that_iteration(probe, repo):
    p = P({"id": "loop", "component_type": "foreach",
           "config": {"items": ["a", "b", "c"], "loop_stages": ["w"], "parallel": True}},
          S("w", value="{{context.item}}"))
    first, results = recorded(repo, p, {})
    assert probe.calls["w"] == 3
    every = repo.checkpoint(first.id, iterations=True)  # what a replay's worker resumes from
    assert sorted(every) == ["loop", "w#0", "w#1", "w#2"] and sorted(repo.checkpoint(first.id)) == ["loop"]
    every.pop("loop")
    assert [r["value"] for r in resume(repo, p, {}, every).output["results"]] == ["a", "b", "c"]
    assert probe.calls["w"] == 3  # the loop ran again; each item came from its own record
    kept = {"w#1": results["w#1"].model_copy(update={"output": {"value": "kept b"}})}
    out = resume(repo, p, {}, kept).output
    assert [r["value"] for r in out["results"]] == ["a", "kept b", "c"]
    assert probe.calls["w"] == 5  # items 0 and 2 ran again; item 1 came from its own record
    # a record without its iteration path stands for no iteration
    out = resume(repo, p, {}, {"w": results["w#1"].model_copy(update={"iteration": None})}).output
    assert [r["value"] for r in out["results"]] == ["a", "b", "c"] and probe.calls["w"] == 8
