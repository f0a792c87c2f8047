"""Recovery with real processes: kill -9 `fm run` and `fm serve` mid-run, SIGTERM `fm serve`, cancel under it.

The invariant each test checks: every run reaches a final state and a
stage that had finished (its result stored) before the kill is never run
again; only the stage in flight at the kill runs twice.
"""
from __future__ import annotations

import json
import signal
import subprocess
import time

from flowmason.kernel.model import Run, RunStatus
from flowmason.plugins.durable import request_cancel

from .conftest import FM, fm, store_of, wait_for

FINAL = {"completed", "failed", "cancelled"}


def test_fm_run_killed_mid_run_is_finished_by_fm_runs_resume_and_no_finished_stage_runs_again(counter, env, tmp_path):
    path = tmp_path / "four.pipeline.json"
    path.write_text(json.dumps(counter.chain("four", 4, sleep=0.2, hold="s3")))
    proc = subprocess.Popen(FM + ["run", str(path), "-q"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run_id = wait_for(lambda: next(iter(counter.runs()), None))
    wait_for(lambda: counter.of(run_id).get("s3"))  # s1 and s2 are recorded, s3 is in flight

    # while its process lives, the run is not up for grabs
    held = fm(["runs", "resume", run_id], env)
    assert held.returncode != 0 and "still running" in held.stderr and "--force" in held.stderr

    proc.kill()
    proc.wait(timeout=10)
    listed = json.loads(fm(["runs", "--json"], env).stdout)
    assert [(r["id"], r["status"], r["stale"]) for r in listed] == [(run_id, "running", "expired")]

    resumed = fm(["runs", "resume", run_id[:12]], env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["body"] == {"stage": "s4"}
    assert counter.of(run_id) == {"s1": 1, "s2": 1, "s3": 2, "s4": 1}
    run = store_of(env).get_run(run_id)
    assert run.status is RunStatus.COMPLETED

    again = fm(["runs", "resume", run_id], env)
    assert again.returncode != 0 and "already completed" in again.stderr


def _finished_before(env, run_ids):
    repo = store_of(env)
    return {rid: set(repo.checkpoint(rid)) for rid in run_ids}


def _start_runs(server, counter, n: int, sleep: float, hold: str | None = "s2") -> list[str]:
    ids = []
    for i in range(n):
        pipeline = counter.chain(f"p{i}", 3, sleep=sleep, hold=hold)
        r = server.client.post("/runs", json={"pipeline": pipeline, "inputs": {}})
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    return ids


def _all_final(server, ids):
    got = [server.client.get(f"/runs/{rid}").json()["status"] for rid in ids]
    return got if set(got) <= FINAL else None


def test_fm_serve_killed_with_runs_in_flight_resumes_them_all_at_its_next_start(counter, env, serve):
    server = serve()
    ids = _start_runs(server, counter, 4, sleep=0.3)
    wait_for(lambda: all(counter.of(rid).get("s2") for rid in ids))  # every run is past its first stage
    server.kill(signal.SIGKILL)
    before = _finished_before(env, ids)
    assert all("s1" in done for done in before.values())

    started = time.monotonic()
    server = serve()
    up = time.monotonic()
    wait_for(lambda: all(counter.of(rid)["s2"] == 2 for rid in ids), timeout=60)  # the stage in flight, again
    resumed = time.monotonic()
    statuses = wait_for(lambda: _all_final(server, ids), timeout=60)
    took = time.monotonic() - started
    assert statuses == ["completed"] * 4
    for rid in ids:
        hits = counter.of(rid)
        assert set(hits) == {"s1", "s2", "s3"}
        for stage in before[rid]:
            assert hits[stage] == 1, (rid, stage, hits)
    print(f"kill -9: server start {up - started:.2f} s, up to all 4 resumed {resumed - up:.2f} s, "
          f"restart to all completed {took:.2f} s")


def test_fm_serve_stopped_by_sigterm_parks_its_runs_and_the_next_start_resumes_them_at_once(counter, env, serve):
    # leases that would take a minute to expire: only parking can explain a prompt resume
    env.update({"FM_LEASE_S": "60", "FM_RECOVERY_GRACE_S": "60"})
    server = serve()
    ids = _start_runs(server, counter, 2, sleep=0.3)
    wait_for(lambda: all(counter.of(rid).get("s2") for rid in ids))
    # uvicorn shuts down cleanly, then re-raises the signal it caught (exit status -15)
    assert server.kill(signal.SIGTERM) in (0, -signal.SIGTERM)
    repo = store_of(env)
    for rid in ids:
        assert repo.get_run(rid).status is RunStatus.RUNNING
        assert repo.store.get(repo.partition(rid), "parked") is not None
        assert repo.store.get(repo.partition(rid), "lease") is None
    before = _finished_before(env, ids)

    started = time.monotonic()
    server = serve()
    assert wait_for(lambda: _all_final(server, ids), timeout=30) == ["completed"] * 2
    print(f"SIGTERM: restart to both runs completed {time.monotonic() - started:.2f} s")
    for rid in ids:
        for stage in before[rid]:
            assert counter.of(rid)[stage] == 1


def test_cancel_under_fm_serve_stops_a_running_run_at_once(counter, env, serve):
    env["FM_CANCEL_POLL_S"] = "60"  # no poll would see it in time: the server cancels its own execution
    server = serve()
    [rid] = _start_runs(server, counter, 1, sleep=0, hold="s1")
    wait_for(lambda: counter.of(rid).get("s1"))
    assert server.client.post(f"/runs/{rid}/cancel").status_code == 202
    assert wait_for(lambda: _all_final(server, [rid]), timeout=10) == ["cancelled"]
    assert "s2" not in counter.of(rid)


def test_cancel_of_a_run_whose_process_died_marks_it_cancelled(env):
    repo = store_of(env)
    run = Run(pipeline_id="gone", pipeline_name="gone", pipeline_version="1", inputs={},
              status=RunStatus.RUNNING, started_at=time.time() - 3600)
    repo.run_started(run)  # running, and nobody holds its lease
    assert request_cancel(repo.store, "default", run.id).status is RunStatus.CANCELLED
    assert repo.get_run(run.id).status is RunStatus.CANCELLED
    assert run.id not in [rid for _, rid in repo.active_runs()[0]]
