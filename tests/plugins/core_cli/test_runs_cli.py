"""`fm runs` (plugins/core_cli/runs_cli.py) on a real SQLite store, and prune on DynamoDB (moto on 127.0.0.1).

The table, its filters and their "no runs match", short id prefixes in
every command, the summary and filters of `fm runs show`, `fm runs prune`.
"""
from __future__ import annotations

import json
import time
import uuid

import pytest

from flowmason.kernel.cli import main
from flowmason.kernel.errors import ExitCode
from flowmason.kernel.model import Run, RunStatus, StageResult, StageStatus
from flowmason.kernel.runs import RunRepository, id_floor, short_id
from flowmason.kernel.storage import open_store
from tests.support.fixtures import moto_endpoint  # noqa: F401 - fixture

LONG = "quarterly-revenue-reconciliation-pipeline"  # longer than the old 24-character column


@pytest.fixture
def store_url(tmp_path, monkeypatch):
    url = f"sqlite://{tmp_path / 'runs.db'}"
    monkeypatch.setenv("FM_STORE", url)
    return url


def fm(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


def make_run(repo, *, pipeline="p", status=RunStatus.COMPLETED, age_s=0.0, stages=(), run_id=None, error=None):
    made = time.time() - age_s
    run = Run(id=run_id or f"{id_floor(made)}{uuid.uuid4().hex[:10]}", pipeline_id=pipeline, pipeline_name=pipeline,
              status=RunStatus.RUNNING, created_at=made, started_at=made)
    repo.run_started(run)
    for sid, st, ms, err in stages:
        repo.stage_recorded(run, StageResult(stage_id=sid, component_type="logger", status=st, duration_ms=ms,
                                             started_at=made, finished_at=made, error=err,
                                             usage={"input_tokens": 12, "output_tokens": 3, "cost_usd": 0.0, "calls": 1}
                                             if sid == "ask" else None))
    run.status, run.finished_at, run.duration_ms, run.error = status, made, 5.0, error
    repo.run_finished(run)
    return run


@pytest.fixture
def repo(store_url):
    s = open_store(store_url)
    yield RunRepository(s, group_commit=False)
    s.close()


def test_the_table_and_its_filters(repo, capsys):
    a = make_run(repo, pipeline=LONG, age_s=1.0)  # older than b: ids of one millisecond sort at random
    b = make_run(repo, pipeline="etl", status=RunStatus.FAILED, error={"message": "boom at load"})
    old = make_run(repo, pipeline="etl", age_s=3 * 86400)
    code, out, _ = fm(capsys, "runs")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "pipeline", "status", "started", "duration"]
    assert lines[1].split()[:3] == [short_id(b.id), "etl", "failed"] and "boom at load" in lines[1]
    assert lines[2].split()[:3] == [short_id(a.id), LONG, "completed"]  # the whole name, not cut
    assert lines[3].split()[0] == short_id(old.id)

    _, out, _ = fm(capsys, "runs", "--status", "failed")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [short_id(b.id)]
    _, out, _ = fm(capsys, "runs", "--pipeline", "etl", "--since", "1d")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [short_id(b.id)]
    code, out, err = fm(capsys, "runs", "--status", "cancelled", "--since", "2h")
    assert code == 0 and out == "" and "no runs match --status cancelled --since 2h" in err
    code, _, err = fm(capsys, "runs", "--status", "bogus")
    assert code == ExitCode.USAGE and "use one of: pending, running, completed, failed, cancelled" in err
    code, out, _ = fm(capsys, "runs", "list", "--since", "1h", "--json")
    assert {r["id"] for r in json.loads(out)} == {a.id, b.id} and all(r["short_id"] for r in json.loads(out))


def test_short_id_prefixes_work_wherever_a_run_id_does(repo, capsys):
    made = id_floor(time.time())
    one = make_run(repo, run_id=f"{made}abcd111111", stages=[("s", StageStatus.COMPLETED, 1.0, None)])
    make_run(repo, run_id=f"{made}abcd222222")
    code, out, _ = fm(capsys, "runs", "show", "abcd1")
    assert code == 0 and out.startswith(f"run       {one.id}  (short id abcd1111)")
    code, _, err = fm(capsys, "debug", "timeline", "abcd11")  # another command, the same resolver
    assert code == ExitCode.NOT_FOUND and one.id in err and "no run with id" not in err  # found; it has no snapshots
    code, _, err = fm(capsys, "runs", "show", "abcd")
    assert code == ExitCode.NOT_FOUND and "is ambiguous: it matches" in err and one.id in err
    code, out, _ = fm(capsys, "runs", "show", "last", "--json")
    assert json.loads(out)["run"]["id"] == f"{made}abcd222222"


def test_show_starts_with_a_summary_and_filters(repo, capsys):
    stages = [(f"s{i}", StageStatus.COMPLETED, float(i), None) for i in range(47)]
    stages += [("bad", StageStatus.FAILED, 2.0, {"message": "division by zero"}),
               ("later", StageStatus.SKIPPED, 0.0, {"message": "upstream failed"}),
               ("ask", StageStatus.COMPLETED, 0.5, None)]
    run = make_run(repo, status=RunStatus.FAILED, stages=stages, error={"message": "division by zero", "stage": "bad"})
    code, out, _ = fm(capsys, "runs", "show", run.id)
    head = out.split("\n\n", 1)[0].splitlines()
    assert "stages    48 completed, 1 failed, 1 skipped" in head
    assert next(x for x in head if x.startswith("slowest")).startswith("slowest   s46 46.0 ms, s45 45.0 ms, s44 44.0 ms")
    assert "failed    bad: division by zero" in head
    assert "(logger, 0.5 ms, attempts 1, 12 in / 3 out tokens, 1 call(s), $0)" in out  # per-stage usage

    code, out, _ = fm(capsys, "runs", "show", run.id, "--status", "failed")
    body = out.split("\n\n", 1)[1]
    assert code == 0 and body.splitlines()[0].startswith("failed     bad") and "s46" not in body and "graph" not in body
    code, out, _ = fm(capsys, "runs", "show", run.id, "--stage", "s3", "--json")
    doc = json.loads(out)
    assert [s["stage_id"] for s in doc["stages"]] == ["s3"] and doc["summary"]["counts"]["completed"] == 48
    code, _, err = fm(capsys, "runs", "show", run.id, "--stage", "nope")
    assert code == 0 and "no stage of" in err


def test_prune_on_sqlite(repo, capsys):
    old = make_run(repo, age_s=40 * 86400)
    old_failed = make_run(repo, status=RunStatus.FAILED, age_s=40 * 86400)
    young = make_run(repo)
    code, out, _ = fm(capsys, "runs", "prune", "--older-than", "30d", "--keep-failed", "--dry-run")
    assert code == 0 and out.startswith("would delete 1 run(s) made before") and "kept 1 failed" in out
    assert repo.get_run(old.id)
    code, out, _ = fm(capsys, "runs", "prune", "--older-than", "30d", "--keep-failed", "--json")
    assert json.loads(out)["pruned"] == [old.id]
    _, out, _ = fm(capsys, "runs", "--json")
    assert {r["id"] for r in json.loads(out)} == {old_failed.id, young.id}
    code, _, err = fm(capsys, "runs", "prune", "--older-than", "soon")
    assert code == ExitCode.USAGE and "--older-than 'soon' is not an age" in err


def test_prune_on_dynamodb(moto_endpoint, capsys, monkeypatch):  # noqa: F811 - fixture
    from tests.support.dynamodb import dynamodb_url

    url = dynamodb_url(moto_endpoint)
    monkeypatch.setenv("FM_STORE", url)
    with open_store(url) as s:
        repo = RunRepository(s, group_commit=False)
        old = make_run(repo, age_s=40 * 86400, stages=[("s", StageStatus.COMPLETED, 1.0, None)])
        young = make_run(repo)
        code, out, _ = fm(capsys, "runs", "prune", "--older-than", "30d")
        assert code == 0 and out.startswith("deleted 1 run(s)")
        assert list(s.query_all(repo.partition(old.id))) == [] and repo.get_run(young.id)
