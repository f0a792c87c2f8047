"""Run retention (kernel/retention.py) on SQLite and on DynamoDB (moto server mode on 127.0.0.1).

prune deletes old finished runs whole and nothing else; a pending or running
run is never touched; FM_RUN_RETENTION_DAYS stamps every item of a finished
run with its expiry (DynamoDB's TTL attribute), so the run vanishes from reads.
"""
from __future__ import annotations

import time
import uuid

import pytest

from flowmason.kernel.errors import InputError, NotFoundError
from flowmason.kernel.model import Run, RunStatus, StageResult, StageStatus
from flowmason.kernel.retention import parse_age, parse_since, prune_runs
from flowmason.kernel.runs import ACTIVE_PK, RunRepository, id_floor
from flowmason.kernel.storage import open_store
from tests.support.fixtures import moto_endpoint  # noqa: F401 - fixture

DAY = 86400.0


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path / 'store.db'}"
    else:
        from tests.support.dynamodb import dynamodb_url

        url = dynamodb_url(request.getfixturevalue("moto_endpoint"))
    s = open_store(url)
    yield s
    s.close()


def record(repo: RunRepository, age_days: float, status: RunStatus, pipeline: str = "p", stages: int = 3) -> Run:
    """A run made ``age_days`` ago with ``stages`` stage results, left in ``status``."""
    made = time.time() - age_days * DAY
    run = Run(id=f"{id_floor(made)}{uuid.uuid4().hex[:10]}", pipeline_id=pipeline, status=RunStatus.RUNNING,
              created_at=made, started_at=made)
    repo.run_started(run)
    for i in range(stages):
        repo.stage_recorded(run, StageResult(stage_id=f"s{i}", component_type="logger", status=StageStatus.COMPLETED,
                                             output={"i": i}, started_at=made, finished_at=made))
    if status not in (RunStatus.PENDING, RunStatus.RUNNING):
        run.status, run.finished_at = status, made
        repo.run_finished(run)
    return run


def snapshot(store, repo, run_ids):
    """Every item the runs own, to compare before and after."""
    out = {}
    for rid in run_ids:
        out[rid] = [(i.sk, i.data, i.version) for i in store.query_all(repo.partition(rid))]
    return out


def test_prune_deletes_old_finished_runs_whole_and_nothing_else(store):
    repo = RunRepository(store, group_commit=False)
    old_ok = record(repo, 40, RunStatus.COMPLETED)
    old_failed = record(repo, 45, RunStatus.FAILED, pipeline="q")
    old_running = record(repo, 50, RunStatus.RUNNING)
    young = record(repo, 2, RunStatus.COMPLETED)
    kept = [old_failed.id, old_running.id, young.id]
    before = snapshot(store, repo, kept)

    report = prune_runs(repo, 30 * DAY, keep_failed=True)

    assert report.pruned == [old_ok.id]
    assert report.kept_failed == 1 and report.kept_unfinished == [old_running.id]
    with pytest.raises(NotFoundError):
        repo.get_run(old_ok.id)
    assert list(store.query_all(repo.partition(old_ok.id))) == []  # stage results gone too
    assert {i.sk for i in store.query_all("runs#p#p")} == {old_running.id, young.id}
    assert snapshot(store, repo, kept) == before  # the others are untouched, item for item
    assert store.get(ACTIVE_PK, old_running.id) is not None

    # without --keep-failed the failed one goes too; the running one never does
    report = prune_runs(repo, 30 * DAY)
    assert report.pruned == [old_failed.id] and report.kept_unfinished == [old_running.id]
    assert [r["id"] for r in repo.list_runs()[0]] == [young.id, old_running.id]


def test_dry_run_deletes_nothing(store):
    repo = RunRepository(store, group_commit=False)
    old = record(repo, 40, RunStatus.COMPLETED)
    assert prune_runs(repo, 30 * DAY, dry_run=True).pruned == [old.id]
    assert repo.get_run(old.id).status is RunStatus.COMPLETED


def test_delete_run_refuses_a_run_that_changed_or_is_active(store):
    repo = RunRepository(store, group_commit=False)
    run = record(repo, 40, RunStatus.FAILED)
    version = store.get(repo.partition(run.id), "meta").version
    run.status = RunStatus.RUNNING  # resumed by another process meanwhile
    repo.run_started(run)
    assert repo.delete_run(run.id, if_version=version) is False
    assert repo.delete_run(run.id) is False  # it is in the active index
    assert repo.get_run(run.id).status is RunStatus.RUNNING
    assert len(repo.stage_results(run.id)) == 3


def test_automatic_expiry_stamps_every_item_of_a_finished_run(store, monkeypatch):
    monkeypatch.setenv("FM_RUN_RETENTION_DAYS", "7")
    monkeypatch.setenv("FM_RUN_RETENTION_FAILED_DAYS", "30")
    repo = RunRepository(store, group_commit=False)
    done = record(repo, 0, RunStatus.COMPLETED)
    failed = record(repo, 0, RunStatus.FAILED)
    running = record(repo, 0, RunStatus.RUNNING)
    for run, days in ((done, 7), (failed, 30)):
        items = list(store.query_all(repo.partition(run.id))) + [store.get("runs", run.id), store.get(f"runs#p#{run.pipeline_id}", run.id)]
        assert len(items) == 6
        assert all(abs(i.expires_at - (run.finished_at + days * DAY)) < 1 for i in items), [(i.sk, i.expires_at) for i in items]
    assert all(i.expires_at is None for i in store.query_all(repo.partition(running.id)))


def test_an_expired_run_is_gone_from_every_read(store, monkeypatch):
    monkeypatch.setenv("FM_RUN_RETENTION_DAYS", "0")  # expires the moment it finishes
    repo = RunRepository(store, group_commit=False)
    run = record(repo, 0, RunStatus.COMPLETED)
    with pytest.raises(NotFoundError):
        repo.find_run(run.id)
    assert repo.list_runs()[0] == [] and list(store.query_all(repo.partition(run.id))) == []
    purge = getattr(store, "purge_expired", None)
    if purge is not None:  # SQLite removes the rows when asked; DynamoDB's TTL does it by itself
        assert purge() == 6


def test_the_dynamodb_table_has_ttl_on_expires_at(moto_endpoint):  # noqa: F811 - fixture
    from tests.support.dynamodb import dynamodb_url

    with open_store(dynamodb_url(moto_endpoint)) as s:
        ttl = s.client.describe_time_to_live(TableName=s.table)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING") and ttl["AttributeName"] == "expires_at"


def test_ages_and_dates_parse_with_clear_errors():
    assert parse_age("30d", "--older-than") == 30 * DAY
    assert parse_age("1.5h", "--older-than") == 5400
    with pytest.raises(InputError, match="--older-than '30' is not an age"):
        parse_age("30", "--older-than")
    assert parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_since("2026-12-01") == time.mktime((2026, 12, 1, 0, 0, 0, 0, 0, -1))
    with pytest.raises(InputError, match="neither an age nor a date"):
        parse_since("yesterday")


def test_expiry_stamps_host_bookkeeping_but_never_rewrites_a_lease(store, monkeypatch):
    monkeypatch.setenv("FM_RUN_RETENTION_DAYS", "7")
    repo = RunRepository(store, group_commit=False)
    run = Run(pipeline_id="p", status=RunStatus.RUNNING, started_at=time.time())
    repo.run_started(run)
    pk = repo.partition(run.id)
    store.put(pk, "pipeline", {"definition": {}})
    lease_until = time.time() + 30
    store.put(pk, "lease", {"owner": "host-1"}, expires_at=lease_until)
    lease_version = store.get(pk, "lease").version
    run.status, run.finished_at = RunStatus.COMPLETED, time.time()
    repo.run_finished(run)
    assert abs(store.get(pk, "pipeline").expires_at - (run.finished_at + 7 * DAY)) < 1
    lease = store.get(pk, "lease")
    assert lease.version == lease_version and lease.expires_at == pytest.approx(lease_until)  # its holder's to renew
