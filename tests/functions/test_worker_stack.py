"""The Lambda API and worker handlers end to end on the local stack (moto's DynamoDB + SQS on 127.0.0.1).

Messages really cross SQS, the worker really checkpoints in DynamoDB, and
redelivery really comes from SQS's visibility timeout and redrive policy.
"""
from __future__ import annotations

import json
import time
from collections import Counter

from flowmason.kernel.model import StageStatus
from flowmason.plugins import durable
from flowmason.kernel.runs import DEFAULT_ORG, RunRepository, namespace
from flowmason.kernel.storage import open_store

from .components import chain
from .conftest import call, finished_result, http_event, wait_for


def _stages(stack, run_id: str) -> dict[str, str]:
    repo = RunRepository(open_store(stack.store_url), namespace(DEFAULT_ORG))
    return {r.stage_id: r.status.value for r in repo.stage_results(run_id) if r.iteration is None}


def _events(stack, run_id: str) -> list:
    from flowmason.plugins.events import read_events

    return read_events(open_store(stack.store_url), namespace(DEFAULT_ORG), run_id)


def test_api_event_starts_a_run_that_the_worker_finishes_through_sqs_and_dynamodb(make_stack, api_handler, tally_plugin):
    stack = make_stack()
    handler = api_handler()
    status, saved = call(handler, "POST", "/pipelines", chain("three", 3, say="hi", tokens=["to", "ken"]))
    assert status == 201 and saved["version"] == 1
    status, run = call(handler, "POST", "/runs", {"pipeline_id": "three", "inputs": {"x": "hello"}})
    assert status == 202 and run["status"] == "pending"

    result = finished_result(handler, run["id"])
    assert result["status"] == "completed"
    assert result["output"] == {"stage": "s3", "value": "hello-3"}
    # the checkpoints are in DynamoDB, one per stage, each stage ran once
    assert _stages(stack, run["id"]) == {"s1": "completed", "s2": "completed", "s3": "completed"}
    assert tally_plugin.DONE == Counter({"s1": 1, "s2": 1, "s3": 1})
    assert stack.invocations >= 1
    status, listed = call(handler, "GET", "/runs", query="status=completed")
    assert [r["id"] for r in listed["items"]] == [run["id"]]
    # the worker kept the run's events in DynamoDB: the API streams starts, logs and tokens, numbered
    response = handler(http_event("GET", f"/runs/{run['id']}/events"), None)
    assert response["statusCode"] == 200 and not response.get("isBase64Encoded")
    events = [block.split("\n") for block in response["body"].strip().split("\n\n")]
    assert [int(lines[0][4:]) for lines in events] == list(range(1, len(events) + 1))
    names = [lines[1][7:] for lines in events]
    assert names[0] == "run.running" and names[-1] == "run.completed"
    assert names.count("stage.started") == names.count("stage.log") == names.count("stage.completed") == 3
    assert "".join(json.loads(lines[2][6:])["text"] for lines in events if lines[1] == "event: stage.token") == "token" * 3


def test_a_worker_killed_after_stage_k_is_redelivered_and_resumes_without_rerunning_finished_stages(
        make_stack, api_handler, tally_plugin, monkeypatch):
    # the queue would hold the dead worker's message 120 s; the worker's hold on it lapses after 2 s
    monkeypatch.setenv("FM_VISIBILITY_S", "2")
    stack = make_stack(visibility_timeout=120, worker_timeout_s=60)
    handler = api_handler()
    tally_plugin.CRASH_ONCE.add("s3")  # dies inside stage 3, after s1 and s2 were checkpointed
    _, run = call(handler, "POST", "/runs", {"pipeline": chain("five", 5), "inputs": {"x": 1}})

    started = time.monotonic()
    result = finished_result(handler, run["id"], timeout=90)
    assert result["status"] == "completed"
    assert stack.crashes >= 1
    assert time.monotonic() - started < 60  # well before the queue's own visibility timeout
    # finished stages ran exactly once; the stage in flight at the crash ran again
    assert tally_plugin.DONE == Counter({f"s{i}": 1 for i in range(1, 6)})
    assert tally_plugin.CALLS["s1"] == 1 and tally_plugin.CALLS["s2"] == 1
    assert tally_plugin.CALLS["s3"] == 2


def test_a_run_longer_than_the_time_limit_continues_in_later_invocations(make_stack, api_handler, tally_plugin):
    # 3 s invocations with a 0.6 s margin; four 0.8 s stages need at least two invocations
    stack = make_stack(worker_timeout_s=3, visibility_timeout=30)
    handler = api_handler()
    _, run = call(handler, "POST", "/runs", {"pipeline": chain("slow", 4, sleep=0.8), "inputs": {"x": 0}})

    result = finished_result(handler, run["id"], timeout=90)
    assert result["status"] == "completed"
    assert stack.invocations >= 2
    assert tally_plugin.DONE == Counter({f"s{i}": 1 for i in range(1, 5)})
    _, got = call(handler, "GET", f"/runs/{run['id']}")
    assert got["status"] == "completed"
    # one log across the invocations: parked at each deadline (not cancelled), numbered on without a repeat
    events = _events(stack, run["id"])
    names = [e.event for e in events]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert names.count("run.running") >= 2 and "run.cancelled" not in names
    assert {e.data["reason"] for e in events if e.event == "run.suspended"} == {"deadline"}
    assert names[-1] == "run.completed" and names.count("run.completed") == 1
    assert [e.data["stage_id"] for e in events if e.event == "stage.completed"] == ["s1", "s2", "s3", "s4"]


def test_a_run_that_keeps_crashing_ends_in_the_dead_letter_queue_marked_failed(
        make_stack, api_handler, tally_plugin, monkeypatch):
    monkeypatch.setenv("FM_VISIBILITY_S", "1")
    stack = make_stack(visibility_timeout=1, max_receive_count=2)
    handler = api_handler()
    tally_plugin.CRASH_ALWAYS.add("s2")
    _, run = call(handler, "POST", "/runs", {"pipeline": chain("doomed", 3), "inputs": {"x": 0}})

    result = finished_result(handler, run["id"], timeout=90)
    assert result["status"] == "failed"
    assert result["error"]["code"] == "dead_letter"
    assert "worker killed in s2" in result["error"]["message"]
    assert tally_plugin.DONE["s1"] == 1 and tally_plugin.DONE["s3"] == 0
    assert stack.crashes >= 2


def test_cancelling_a_running_run_stops_it(make_stack, api_handler, tally_plugin, monkeypatch):
    monkeypatch.setenv("FM_CANCEL_POLL_S", "0.1")
    durable.reset_settings()
    make_stack()
    handler = api_handler()
    _, run = call(handler, "POST", "/runs", {"pipeline": chain("long", 2, sleep=30), "inputs": {"x": 0}})
    wait_for(lambda: tally_plugin.CALLS["s1"] == 1, timeout=30)
    status, _ = call(handler, "POST", f"/runs/{run['id']}/cancel")
    assert status == 202
    result = finished_result(handler, run["id"], timeout=30)
    assert result["status"] == "cancelled"
    assert tally_plugin.DONE["s1"] == 0 and tally_plugin.CALLS["s2"] == 0


def test_a_foreach_over_many_items_fans_out_across_invocations_and_runs_every_item_once(
        make_stack, api_handler, tally_plugin):
    # the smallest fan-out that still needs several chunks and several invocations
    stack = make_stack(fanout_min_items=100, chunk_size=50, batch_size=2, concurrency=4)
    handler = api_handler()
    pipeline = {
        "id": "fan", "name": "fan",
        "stages": [
            {"id": "start", "type": "tally"},
            {"id": "each", "type": "foreach", "depends_on": ["start"],
             "config": {"items": "{{input.items}}", "loop_stages": ["work"], "item_variable": "item",
                        "parallel": True, "max_parallel": 20}},
            {"id": "work", "type": "tally", "config": {"index": "{{context.index}}", "value": "{{context.item}}"}},
            {"id": "end", "type": "tally", "depends_on": ["each"]},
        ],
        "output_stage_id": "each",
    }
    items = [f"item-{i}" for i in range(200)]
    _, run = call(handler, "POST", "/runs", {"pipeline": pipeline, "inputs": {"items": items}})

    result = finished_result(handler, run["id"], timeout=120)
    assert result["status"] == "completed", result["error"]
    out = result["output"]
    assert out["chunks"] == 4 and out["total_items"] == 200 and out["processed_items"] == 200
    assert [r["value"] for r in out["results"]] == items
    work = {k: v for k, v in tally_plugin.DONE.items() if k.startswith("work[")}
    assert len(work) == 200 and set(work.values()) == {1}
    assert tally_plugin.DONE["start"] == 1 and tally_plugin.DONE["end"] == 1
    # the 4 chunks, the first pass and the join can't fit in fewer than 3 invocations of 2 messages
    assert stack.invocations >= 3
    assert _stages(stack, run["id"])["each"] == StageStatus.COMPLETED.value
    # chunks on parallel workers write to one log: no number handed out twice, every item's end in it
    events = _events(stack, run["id"])
    seqs = [e.seq for e in events]
    assert len(seqs) == len(set(seqs)) and seqs == sorted(seqs)
    done = [e.data["iteration"] for e in events if e.event == "stage.completed" and e.data["stage_id"] == "work"]
    assert sorted(done, key=int) == [str(i) for i in range(200)]
    assert events[-1].event == "run.completed" and [e for e in events if e.final] == [events[-1]]


def _fan_pipeline(pid: str, *, sleep: float = 0, parallel: bool = True) -> dict:
    return {
        "id": pid, "name": pid,
        "stages": [
            {"id": "each", "type": "foreach",
             "config": {"items": "{{input.items}}", "loop_stages": ["work"], "distributed": True,
                        "fanout_chunk_size": "{{input.chunk}}", "parallel": parallel, "max_parallel": 10}},
            {"id": "work", "type": "tally", "config": {"index": "{{context.index}}", "value": "{{context.item}}",
                                                       "sleep": sleep}},
        ],
        "output_stage_id": "each",
    }


def test_a_chunk_killed_mid_way_is_redelivered_and_still_runs_every_item_once(
        make_stack, api_handler, tally_plugin, monkeypatch):
    monkeypatch.setenv("FM_VISIBILITY_S", "2")
    make_stack(visibility_timeout=2, batch_size=1, concurrency=2)
    handler = api_handler()
    # chunk 1 (items 60-119) dies at its 52nd item, after its first 50 were flushed (FLUSH_EVERY)
    tally_plugin.CRASH_ONCE.add("work[111]")
    _, run = call(handler, "POST", "/runs", {"pipeline": _fan_pipeline("crashy", parallel=False),
                                             "inputs": {"items": list(range(120)), "chunk": 60}})
    result = finished_result(handler, run["id"], timeout=120)
    assert result["status"] == "completed", result["error"]
    assert [r["value"] for r in result["output"]["results"]] == list(range(120))
    assert tally_plugin.CALLS["work[111]"] == 2
    assert len(tally_plugin.DONE) == 120 and set(tally_plugin.DONE.values()) == {1}
    # the items that finished before the crash were not run again
    assert all(tally_plugin.CALLS[f"work[{i}]"] == 1 for i in range(60, 110))


def test_cancelling_a_fanned_out_run_cancels_it(make_stack, api_handler, tally_plugin, monkeypatch):
    monkeypatch.setenv("FM_CANCEL_POLL_S", "0.1")
    durable.reset_settings()
    make_stack(batch_size=1, concurrency=2)
    handler = api_handler()
    _, run = call(handler, "POST", "/runs", {"pipeline": _fan_pipeline("stoppable", sleep=0.5),
                                             "inputs": {"items": list(range(80)), "chunk": 10}})
    wait_for(lambda: sum(tally_plugin.CALLS.values()) >= 1, timeout=30)
    assert call(handler, "POST", f"/runs/{run['id']}/cancel")[0] == 202
    result = finished_result(handler, run["id"], timeout=60)
    assert result["status"] == "cancelled"
    assert sum(tally_plugin.DONE.values()) < 80


def test_a_run_message_that_finds_the_run_leased_comes_back_later(make_stack, api_handler, tally_plugin):
    import asyncio
    import json
    import time

    stack = make_stack(run_worker=False)
    handler = api_handler()
    _, run = call(handler, "POST", "/runs", {"pipeline": chain("leased", 1), "inputs": {"x": 0}})
    sqs = stack.sqs()
    first = wait_for(lambda: sqs.receive_message(QueueUrl=stack.queue_url).get("Messages"))[0]
    body = json.loads(first["Body"])
    jobs = stack.jobs()
    pk = f"{namespace(DEFAULT_ORG)}run#{run['id']}"
    jobs.store.put(pk, "lease", {"owner": "someone else"}, expires_at=time.time() + 60)

    assert asyncio.run(jobs.handle(body)) == "busy-retry"
    assert tally_plugin.CALLS["s1"] == 0
    jobs.store.delete(pk, "lease")
    again = wait_for(lambda: sqs.receive_message(QueueUrl=stack.queue_url).get("Messages"), timeout=10)[0]
    retry = json.loads(again["Body"])
    assert retry == {**body, "busy": 1}
    assert asyncio.run(jobs.handle(retry)) == "completed"
    assert tally_plugin.DONE["s1"] == 1


def test_an_extends_and_subpipeline_fixture_runs_the_same_through_the_lambda_worker(make_stack, api_handler):
    # the runner's conformance fixture (tests/conformance/test_runner_entry_points.py), on SQS + DynamoDB
    from tests.conformance.test_runner_entry_points import BASE, CHILD, EXPECTED, INPUTS, SUB

    make_stack()
    handler = api_handler()
    for doc in (BASE, SUB, CHILD):
        status, _ = call(handler, "POST", "/pipelines", doc)
        assert status == 201
    _, run = call(handler, "POST", "/runs", {"pipeline_id": "child", "inputs": INPUTS})
    result = finished_result(handler, run["id"])
    assert result["status"] == "completed", result
    assert result["output"] == EXPECTED
