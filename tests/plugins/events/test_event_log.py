"""The event log on a real SQLite store under the real executor: what it keeps, in what order, in how many writes."""
from __future__ import annotations

import asyncio

import pytest

from flowmason.kernel.components import operator
from flowmason.kernel.errors import StoreUnavailableError
from flowmason.kernel.executor import Execution, plan_for
from flowmason.kernel.model import parse_pipeline
from flowmason.kernel.plugins import hookimpl
from flowmason.kernel.runs import RunRepository
from flowmason.kernel.storage import open_store
from flowmason.plugins.events import EventCursor, EventLog, read_events
from flowmason.plugins.events.layout import chunk_row


@operator("t-stream")
async def stream(ctx):
    for i in range(int(ctx.config.get("tokens", 0))):
        ctx.emit("stage.token", f"t{i} ")
        await asyncio.sleep(0)  # one token per turn of the loop, as a model's stream delivers them
    if ctx.config.get("say"):
        ctx.log("warning", ctx.config["say"], n=1)
    return {"ok": True}


FLAKY: dict[str, int] = {}


@operator("t-flaky")
async def flaky(ctx):
    FLAKY[ctx.run.id] = FLAKY.get(ctx.run.id, 0) + 1
    if FLAKY[ctx.run.id] == 1:
        raise RuntimeError("first try fails")
    return {"try": FLAKY[ctx.run.id]}


@operator("t-plain")
def plain(ctx):
    return ctx.config.get("value")


class Parts:
    @hookimpl
    def fm_register_components(self, register):
        register(stream)
        register(plain)
        register(flaky)


class Counting:
    """A real store that counts the writes the event log makes (and can be told to fail them)."""

    def __init__(self, store):
        self.store = store
        self.batches = 0
        self.increments = 0
        self.fail = False

    def batch_put(self, items):
        if self.fail:
            raise StoreUnavailableError("the store is down (test)")
        self.batches += 1
        return self.store.batch_put(items)

    def increment(self, *args, **kw):
        self.increments += 1
        return self.store.increment(*args, **kw)

    def __getattr__(self, name):
        return getattr(self.store, name)


@pytest.fixture
def store(tmp_path):
    from flowmason.kernel import plugins

    plugins.reset(None, extra=[Parts()])
    s = open_store(f"sqlite:///{tmp_path / 'events.db'}")
    yield s
    s.close()
    plugins.reset()


def _run(pipeline: dict, store, events: EventLog):
    plan = plan_for(parse_pipeline(pipeline))
    ex = Execution(plan, {}, recorder=RunRepository(store), listeners=[events])
    return asyncio.run(ex.execute())


def test_tokens_are_coalesced_and_everything_is_in_order_with_contiguous_numbers(store):
    counting = Counting(store)
    log = EventLog(counting)
    run = _run({"id": "p", "name": "p", "stages": [
        {"id": "a", "type": "t-stream", "config": {"tokens": 300, "say": "done streaming"}},
        {"id": "b", "type": "t-plain", "depends_on": ["a"], "config": {"value": 1}}]}, store, log)
    events = read_events(store, "", run.id)
    names = [e.event for e in events]
    tokens = [e for e in events if e.event == "stage.token"]
    # 300 tokens in one fast stage: a handful of events, the text whole and in order
    assert 1 <= len(tokens) <= 5 and sum(e.data["tokens"] for e in tokens) == 300
    assert "".join(e.data["text"] for e in tokens) == "".join(f"t{i} " for i in range(300))
    assert names[:2] == ["run.running", "stage.started"]
    assert names[-4:] == ["stage.completed", "stage.started", "stage.completed", "run.completed"]
    assert names.index("stage.log") > max(i for i, n in enumerate(names) if n == "stage.token")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].final and not any(e.final for e in events[:-1])
    settled = events[-2].data
    assert settled == {"run_id": run.id, "stage_id": "b", "iteration": None, "status": "completed",
                       "duration_ms": settled["duration_ms"], "error": None}  # small: the output stays in the stage result
    assert counting.batches == counting.increments <= len(tokens) + 4


def test_a_200_stage_chain_costs_a_few_writes_not_one_per_event(store):
    counting = Counting(store)
    stages = [{"id": f"s{i}", "type": "t-plain", "config": {"value": i},
               **({"depends_on": [f"s{i - 1}"]} if i else {})} for i in range(200)]
    run = _run({"id": "chain", "name": "chain", "stages": stages}, store, EventLog(counting))
    events = read_events(store, "", run.id)
    assert len(events) == 1 + 2 * 200 + 1
    assert counting.batches <= 3  # the chain runs in one turn of the loop; the final event goes at once
    assert len(store.query(f"run#{run.id}", prefix="event#", limit=100).items) <= 3  # items hold many events

    # async stages settle one per turn: writes are still grouped (at most one per FLUSH_INTERVAL_S), not 400
    counting.batches = 0
    for stage in stages:
        stage["type"] = "t-stream"
    run = _run({"id": "async", "name": "async", "stages": stages}, store, EventLog(counting))
    assert len(read_events(store, "", run.id)) == 1 + 2 * 200 + 1
    assert counting.batches < 50


def test_numbers_stay_unique_across_writers_of_one_run_and_a_cursor_resumes_after_n(store):
    first, second = EventLog(store), EventLog(store)  # a run and its continuation on another host
    run = _run({"id": "p", "name": "p", "stages": [{"id": "a", "type": "t-stream", "config": {"say": "one"}}]},
               store, first)
    cursor = EventCursor(store, "", run.id)
    before = cursor.poll()
    plan = plan_for(parse_pipeline({"id": "p", "name": "p", "stages": [{"id": "a", "type": "t-stream", "config": {}}]}))
    asyncio.run(Execution(plan, {}, run=run, listeners=[second]).execute())
    after = cursor.poll()
    assert before and after
    assert [e.seq for e in before + after] == list(range(1, len(before) + len(after) + 1))
    assert cursor.poll() == []  # nothing new: nothing handed out twice
    assert read_events(store, "", run.id, after=before[-1].seq) == after
    # back on the first host: it numbers on after the second's events
    asyncio.run(Execution(plan, {}, run=run, listeners=[first]).execute())
    events = read_events(store, "", run.id)
    assert [e.seq for e in events] == list(range(1, len(before) + 2 * len(after) + 1))
    assert first.dropped == 0


def test_a_hole_left_by_a_slower_writer_is_filled_in_when_it_lands_and_passed_over_when_it_never_does(store):
    pk = "run#r1"

    def land(first, count):  # a writer's block of numbers arriving
        store.batch_put([chunk_row(pk, first, [{"event": "stage.log", "data": {"n": n}}
                                               for n in range(first, first + count)])])

    land(1, 2)
    land(4, 2)
    cursor = EventCursor(store, "", "r1")
    assert [e.seq for e in cursor.poll(now=0.0)] == [1, 2, 4, 5]
    land(3, 1)
    assert [e.seq for e in cursor.poll(now=1.0)] == [3]  # not 4 and 5 again
    assert cursor.after == 5
    land(7, 1)
    assert [e.seq for e in cursor.poll(now=2.0)] == [7]
    assert cursor.poll(now=5.0) == [] and cursor.after == 5  # 6 may still come
    assert cursor.poll(now=20.0) == [] and cursor.after == 7  # it never will
    assert [e.seq for e in EventCursor(store, "", "r1", after=4).poll()] == [5, 7]  # from inside a chunk


def test_a_store_that_fails_the_event_writes_does_not_fail_the_run(store):
    counting = Counting(store)
    counting.fail = True
    log = EventLog(counting)
    run = _run({"id": "p", "name": "p", "stages": [{"id": "a", "type": "t-stream", "config": {"tokens": 3, "say": "x"}}]},
               store, log)
    assert run.status.value == "completed" and log.dropped > 0 and log.written == 0
    assert RunRepository(store).get_run(run.id).status.value == "completed"


def test_a_sub_pipelines_events_go_to_the_log_of_the_run_the_client_follows(store):
    child = {"id": "child", "name": "child", "stages": [{"id": "c1", "type": "t-stream", "config": {"say": "inside"}}]}
    run = _run({"id": "parent", "name": "parent", "stages": [
        {"id": "sub", "type": "subpipeline", "config": {"pipeline": child, "inputs": {}}}]}, store, EventLog(store))
    events = read_events(store, "", run.id)
    names = [e.event for e in events]
    assert names[0] == "run.running" and names[-1] == "run.completed" and names.count("run.completed") == 1
    assert "pipeline.started" in names and "pipeline.completed" in names
    log = next(e for e in events if e.event == "stage.log")
    assert log.data["stage_id"] == "c1" and log.data["run_id"] != run.id
    assert [e for e in events if e.final] == [events[-1]]


def test_a_retry_and_a_failure_are_in_the_log_with_their_errors(store):
    run = _run({"id": "p", "name": "p", "stages": [
        {"id": "a", "type": "t-flaky", "retry_config": {"max_retries": 1, "initial_delay_ms": 1}},
        {"id": "b", "type": "t-stream", "depends_on": ["a"], "config": {"tokens": "many"},
         "on_error": "continue"}]},
        store, EventLog(store))
    events = read_events(store, "", run.id)
    retry = next(e for e in events if e.event == "stage.retry")
    assert retry.data["stage_id"] == "a" and retry.data["attempt"] == 1 and "first try fails" in retry.data["error"]
    assert [e.event for e in events if e.data.get("stage_id") == "a"] == ["stage.started", "stage.retry", "stage.completed"]
    failed = next(e for e in events if e.event == "stage.failed")
    assert failed.data["stage_id"] == "b" and failed.data["status"] == "failed" and "many" in failed.data["error"]["message"]
    assert events[-1].event == "run.completed"


def test_a_fan_out_chunk_logs_its_stages_but_not_a_start_or_end_of_the_run(store):
    run = _run({"id": "p", "name": "p", "stages": [{"id": "a", "type": "t-stream", "config": {"say": "chunk"}}]},
               store, EventLog(store, run_events=False))
    assert [e.event for e in read_events(store, "", run.id)] == ["stage.started", "stage.log", "stage.completed"]


def test_with_run_retention_the_events_written_after_the_end_expire_with_the_run(store, monkeypatch):
    monkeypatch.setenv("FM_RUN_RETENTION_DAYS", "3")
    run = _run({"id": "kept", "name": "kept", "stages": [{"id": "a", "type": "t-plain"}]}, store, EventLog(store))
    items = list(store.query_all(f"run#{run.id}"))
    assert {i.sk for i in items} >= {"meta", "stage#a", "event-seq"} and any(i.sk.startswith("event#") for i in items)
    expected = run.finished_at + 3 * 86400
    assert all(i.expires_at is not None and abs(i.expires_at - expected) < 1 for i in items), \
        [(i.sk, i.expires_at) for i in items]
