"""The worker never loops and never swallows, on the local stack (moto's SQS + DynamoDB on 127.0.0.1).

Poison messages are recorded and deleted (by the worker and by the
dead-letter handler); a batch's messages stay invisible for
``FM_VISIBILITY_S`` past the worker's last heartbeat, however short the
queue's own timeout; a fan-out chunk has the continuation cap and sends its
continuation only after letting go of its lease.
"""
from __future__ import annotations

import asyncio
import json
import time

from flowmason.kernel.runs import DEFAULT_ORG, namespace
from flowmason.plugins.durable.fanout import fkey
from flowmason.plugins.durable.jobs import POISON_PK

from .components import chain
from .conftest import call, finished_result, wait_for

POISON = ["this is {not json", "[1, 2, 3]", json.dumps({"kind": "teleport", "org": "a", "run_id": "b"}),
          json.dumps({"kind": "chunk", "org": "a", "run_id": "b", "stage": "s"})]


def _in_queue(stack, url: str) -> int:
    attrs = stack.sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _poison(stack) -> list:
    return list(stack.store("WorkerFunction").query_all(POISON_PK))


def test_poison_messages_are_recorded_and_deleted_and_other_runs_go_on(make_stack, api_handler, tally_plugin):
    stack = make_stack(visibility_timeout=30, max_receive_count=5)
    sqs = stack.sqs()
    for body in POISON:
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body)
    handler = api_handler()
    _, run = call(handler, "POST", "/runs", {"pipeline": chain("good", 1), "inputs": {"x": 0}})
    assert finished_result(handler, run["id"])["status"] == "completed"

    # each bad body handled once, on its first delivery: none waits for the 30 s visibility or the dead-letter queue
    wait_for(lambda: len(_poison(stack)) == len(POISON), timeout=30)
    assert _in_queue(stack, stack.queue_url) == 0 and _in_queue(stack, stack.dlq_url) == 0
    reasons = sorted(item.data["reason"] for item in _poison(stack))
    assert any("not JSON" in r for r in reasons) and any("JSON list" in r for r in reasons)
    assert any("unknown message kind 'teleport'" in r for r in reasons)
    assert any("chunk message needs" in r for r in reasons)
    assert sorted(item.data["body"] for item in _poison(stack)) == sorted(POISON)
    assert stack.crashes == 0


def test_the_dead_letter_handler_records_poison_instead_of_failing(make_stack, tally_plugin):
    from flowmason.functions import worker
    from flowmason.functions.local_stack import LocalContext

    stack = make_stack(run_worker=False)
    worker.configure(stack.jobs(), dead_letter=stack.jobs("DeadLetterFunction"))
    records = [{"messageId": f"m{i}", "receiptHandle": f"r{i}", "body": body, "attributes": {},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:dlq", "awsRegion": "us-east-1"}
               for i, body in enumerate(POISON)]
    result = worker.dead_letter_handler({"Records": records}, LocalContext("DeadLetterFunction", 60))
    assert result == {"batchItemFailures": []}
    assert sorted(item.data["message_id"] for item in _poison(stack)) == [f"m{i}" for i in range(len(POISON))]


def test_a_batch_held_longer_than_the_queue_s_visibility_is_not_delivered_twice(
        make_stack, api_handler, tally_plugin, monkeypatch):
    # the queue would hand the message out again after 1 s; the worker's heartbeat holds it for 2 s at a time
    monkeypatch.setenv("FM_VISIBILITY_S", "2")
    stack = make_stack(visibility_timeout=1)
    handler = api_handler()
    _, run = call(handler, "POST", "/runs", {"pipeline": chain("held", 1, sleep=4), "inputs": {"x": 0}})
    assert finished_result(handler, run["id"], timeout=60)["status"] == "completed"
    assert stack.invocations == 1  # no redelivery, not even one that found the lease and went back
    assert tally_plugin.CALLS["s1"] == 1


def _fanned_out(stack, handler, items: int = 6, chunk: int = 3) -> tuple[str, list[dict]]:
    """A run whose distributed foreach has been split: its chunk messages, taken off the queue."""
    pipeline = {"id": "fan", "name": "fan", "output_stage_id": "each", "stages": [
        {"id": "each", "type": "foreach",
         "config": {"items": "{{input.items}}", "loop_stages": ["work"], "distributed": True,
                    "fanout_chunk_size": chunk}},
        {"id": "work", "type": "tally", "config": {"index": "{{context.index}}", "sleep": 0.3}}]}
    _, run = call(handler, "POST", "/runs", {"pipeline": pipeline, "inputs": {"items": list(range(items))}})
    sqs, jobs = stack.sqs(), stack.jobs()
    first = wait_for(lambda: sqs.receive_message(QueueUrl=stack.queue_url).get("Messages"))[0]
    assert asyncio.run(jobs.handle(json.loads(first["Body"]))) == "fanned-out"
    chunks: list[dict] = []

    def more():
        got = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10).get("Messages") or []
        chunks.extend(json.loads(m["Body"]) for m in got)
        return len(chunks) >= items // chunk

    wait_for(more, timeout=10)
    return run["id"], chunks


def test_a_chunk_continued_too_often_ends_with_an_error_instead_of_looping(
        make_stack, api_handler, tally_plugin, monkeypatch):
    monkeypatch.setenv("FM_MAX_CONTINUATIONS", "3")
    stack = make_stack(run_worker=False)
    run_id, chunks = _fanned_out(stack, api_handler())
    jobs = stack.jobs()
    assert asyncio.run(jobs.handle({**chunks[0], "continuation": 4})) == "failed"
    pk = f"{namespace(DEFAULT_ORG)}run#{run_id}"
    out = jobs.store.get(pk, fkey("each", "out", chunks[0]["chunk"]))
    assert out.data["error"]["code"] == "too_many_continuations"
    assert sum(tally_plugin.CALLS.values()) == 0


def test_a_paused_chunk_lets_go_of_its_lease_before_its_continuation_is_sent(
        make_stack, api_handler, tally_plugin):
    stack = make_stack(run_worker=False)
    run_id, chunks = _fanned_out(stack, api_handler())
    jobs = stack.jobs()
    pk = f"{namespace(DEFAULT_ORG)}run#{run_id}"
    body = chunks[0]
    sent: list[tuple[dict, object]] = []
    real_send = jobs.queue.send

    def send(message, delay_s=0):
        # what a worker picking the continuation up at once would find
        sent.append((message, jobs.store.get(pk, f"lease#each#{body['chunk']}")))
        real_send(message, delay_s=delay_s)

    jobs.queue.send = send
    # a deadline already near: the chunk parks after its first item and continues
    outcome = asyncio.run(jobs.handle(body, deadline=time.monotonic() + 0.1))
    assert outcome == "continued"
    assert [(m.get("continuation"), lease) for m, lease in sent] == [(1, None)]
    # and the continuation finishes the chunk
    assert asyncio.run(jobs.handle(sent[0][0])) == "chunk-done"
    assert jobs.store.get(pk, fkey("each", "out", body["chunk"])) is not None
