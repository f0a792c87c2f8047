"""A 600 KB stage output survives a crash: `fm run` killed, `fm runs resume`, the downstream stage gets all of it.

Before the blob store, the output was kept as a preview, and after a
resume the downstream stage received 0 bytes while the run still ended
``completed``. Also: with no blob store the stage fails, the run fails.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from flowmason.kernel.model import RunStatus

from .conftest import FM, fm, store_of, wait_for

SIZE = 600_000


def big_then_post(counter) -> dict:
    """s1 GETs a 600 KB body; s2 POSTs it back (its first call held: the process is killed then)."""
    return {"id": "big", "name": "big", "stages": [
        {"id": "s1", "type": "http-request",
         "config": {"url": f"{counter.url}/{{{{run.id}}}}/s1?size={SIZE}", "response_type": "text", "timeout_ms": 60000}},
        {"id": "s2", "type": "http-request", "depends_on": ["s1"],
         "config": {"url": f"{counter.url}/{{{{run.id}}}}/s2?first=30", "method": "POST",
                    "body": "{{upstream.s1.body}}", "timeout_ms": 60000}},
        {"id": "s3", "type": "json-transform", "depends_on": ["s1", "s2"],
         "config": {"template": {"n": "{{len(upstream.s1.body)}}"}}},
    ]}


def test_a_600_kb_output_reaches_the_downstream_stage_whole_after_a_crash_and_resume(counter, env, tmp_path):
    path = tmp_path / "big.pipeline.json"
    path.write_text(json.dumps(big_then_post(counter)))
    proc = subprocess.Popen(FM + ["run", str(path), "-q"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run_id = wait_for(lambda: next(iter(counter.runs()), None))
    wait_for(lambda: counter.of(run_id).get("s2"))  # s1 is recorded, s2 is in flight
    proc.kill()
    proc.wait(timeout=10)
    repo = store_of(env)
    assert repo.checkpoint(run_id)["s1"].output["body"] == "x" * SIZE  # the checkpoint holds it whole

    resumed = fm(["runs", "resume", run_id], env, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == {"n": SIZE}
    assert counter.of(run_id) == {"s1": 1, "s2": 2}
    *_, (rid, stage, length, first) = counter.received
    assert (rid, stage, length, first) == (run_id, "s2", SIZE, b"x")  # all 600 KB, after the resume
    run = repo.get_run(run_id)
    assert run.status is RunStatus.COMPLETED and run.output == {"n": SIZE}


def test_with_no_blob_store_the_stage_with_a_large_output_fails_and_so_does_the_run(counter, env, tmp_path):
    pytest.importorskip("moto")
    from tests.support.dynamodb import dynamodb_url, local_dynamodb

    with local_dynamodb() as endpoint:
        # the server's dummy AWS credentials are in this process's environment now
        env = {**env, **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},
               "FM_STORE": dynamodb_url(endpoint, blobs=False)}
        path = tmp_path / "big.pipeline.json"
        pipeline = big_then_post(counter)
        pipeline["stages"][1]["config"]["url"] = pipeline["stages"][1]["config"]["url"].replace("?first=30", "")
        path.write_text(json.dumps(pipeline))
        ran = fm(["run", str(path), "-q"], env)
        assert ran.returncode != 0 and not ran.stdout
        assert "stage 's1'" in ran.stderr and "no blob store" in ran.stderr and "FM_BLOB_BUCKET" in ran.stderr
        (summary,) = json.loads(fm(["runs", "--json"], env).stdout)
        assert summary["status"] == "failed"
        record = json.loads(fm(["runs", "show", "--json", summary["id"]], env).stdout)
        s1 = next(s for s in record["stages"] if s["stage_id"] == "s1")
        assert s1["status"] == "failed" and s1["error"]["code"] == "value_not_stored"
        assert record["run"]["status"] == "failed" and record["run"]["error"]["code"] == "value_not_stored"
