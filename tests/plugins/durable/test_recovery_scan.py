"""The recovery scan on a real SQLite store: which runs it resumes, and the ones it gives up on, with the reason."""
from __future__ import annotations

import asyncio
import time

import pytest

from flowmason.kernel.model import Run, RunStatus
from flowmason.kernel.runs import RunRepository
from flowmason.kernel.storage import open_store
from flowmason.plugins.durable import Jobs, Settings, scan


@pytest.fixture
def repo(tmp_path):
    return RunRepository(open_store(f"sqlite:///{tmp_path / 'scan.db'}"))


def _running(repo, *, age: float) -> Run:
    run = Run(pipeline_id="p", pipeline_name="p", pipeline_version="1", inputs={}, status=RunStatus.RUNNING,
              started_at=time.time() - age)
    repo.run_started(run)
    return run


def test_the_scan_resumes_runs_whose_lease_is_gone_and_leaves_young_and_finished_ones(repo):
    cfg = Settings(grace_s=30, max_recoveries=2)
    dead = _running(repo, age=600)
    young = _running(repo, age=1)  # its host may not have taken the lease yet
    done = _running(repo, age=600)
    done.status = RunStatus.COMPLETED
    repo.run_finished(done)
    sent: list[dict] = []
    assert scan(repo.store, sent.append, settings=cfg) == [dead.id]
    assert sent == [{"kind": "run", "run_id": dead.id, "org": "default", "recovery": 1}]
    assert young.id in [rid for _, rid in repo.active_runs()[0]]


def test_a_run_whose_process_keeps_dying_is_failed_with_the_reason(repo):
    cfg = Settings(grace_s=30, max_recoveries=2)
    run = _running(repo, age=600)
    sent: list[dict] = []
    for _ in range(3):
        scan(repo.store, sent.append, settings=cfg)
    assert len(sent) == 2
    failed = repo.get_run(run.id)
    assert failed.status is RunStatus.FAILED and failed.error["code"] == "process_died"
    assert "stopped 3 times" in failed.error["message"]
    assert repo.active_runs()[0] == []


def test_a_resumed_run_whose_pipeline_no_longer_loads_is_failed_with_the_reason(repo):
    run = _running(repo, age=600)
    repo.store.put(repo.partition(run.id), "pipeline", {"definition": {
        "id": "p", "name": "p", "stages": [{"id": "a", "type": "no-such-component"}]}})
    outcome = asyncio.run(Jobs(repo.store, None, fanout_min_items=None).resume("default", run.id))
    assert outcome == "failed"
    failed = repo.get_run(run.id)
    assert failed.error["code"] == "cannot_resume" and "no-such-component" in failed.error["message"]
