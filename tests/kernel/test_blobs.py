"""Values over the item limit are kept whole in the blob store, on SQLite and on DynamoDB + S3 (moto's server).

The invariant: whatever is recorded is read back whole by every reader
(run, stage results, checkpoint, fan-out iterations); a value that cannot
be stored fails its stage and its run, never a preview.
"""
from __future__ import annotations

import asyncio
import json

import pytest

from flowmason.kernel import blobs
from flowmason.kernel.errors import StorageError, ValueNotStoredError
from flowmason.kernel.model import Run, RunStatus, StageResult, StageStatus
from flowmason.kernel.runs import RunRepository
from flowmason.kernel.storage import MAX_ITEM_BYTES, open_store

BIG = "x" * 600_000  # a 600 KB HTTP body


@pytest.fixture(scope="module")
def moto_endpoint():
    pytest.importorskip("moto")
    from tests.support.dynamodb import local_dynamodb

    with local_dynamodb() as endpoint:
        yield endpoint


def _open(kind, tmp_path, request, **kw):
    if kind == "sqlite":
        return open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    from tests.support.dynamodb import dynamodb_url

    return open_store(dynamodb_url(request.getfixturevalue("moto_endpoint"), **kw))


@pytest.fixture(params=["sqlite", "dynamodb"])
def kind(request):
    return request.param


@pytest.fixture
def store(kind, tmp_path, request):
    s = _open(kind, tmp_path, request)
    yield s
    s.close()


def result(stage_id, output, *, iteration=None, input=None):
    return StageResult(stage_id=stage_id, component_type="json-transform", status=StageStatus.COMPLETED,
                       output=output, input=input, iteration=iteration, started_at=1.0, finished_at=2.0)


def test_large_run_and_stage_values_are_read_back_whole_by_every_reader(store):
    repo = RunRepository(store, "org#acme#", group_commit=False)
    inputs = {"big": BIG, "n": 1}
    run = Run(pipeline_id="p", status=RunStatus.RUNNING, inputs=inputs)
    repo.run_started(run)
    repo.stage_recorded(run, result("fetch", {"body": BIG}, input={"url": "u"}))
    repo.stage_recorded(run, result("small", {"ok": True}))
    items = [{"i": i, "text": "y" * 300} for i in range(2_000)]  # a 2,000-item foreach's joined output
    repo.stage_recorded(run, result("each", items, iteration="0"))
    run.status, run.output = RunStatus.COMPLETED, {"joined": items, "body": BIG}
    repo.run_finished(run)

    back = repo.get_run(run.id)
    assert back.inputs == inputs and back.output == {"joined": items, "body": BIG}
    by_id = {r.stage_id: r for r in repo.stage_results(run.id)}
    assert by_id["fetch"].output == {"body": BIG} and by_id["fetch"].input == {"url": "u"}
    assert by_id["small"].output == {"ok": True}
    assert repo.checkpoint(run.id, ["fetch", "small"])["fetch"].output == {"body": BIG}
    assert repo.checkpoint(run.id)["fetch"].output == {"body": BIG}
    assert repo.finished_iterations(run.id, "each", {"0"}) == {"0": items}

    # the items themselves hold references, and small items hold none
    stage_item = store.get(repo.partition(run.id), "stage#fetch").data
    assert stage_item["output"] is None and set(blobs.refs(stage_item)) == {"output"}
    assert blobs.refs(stage_item)["output"]["key"].startswith("org#acme#blob/")
    assert len(json.dumps(stage_item)) < 2_000
    assert not blobs.has_refs(store.get(repo.partition(run.id), "stage#small").data)
    meta = store.get(repo.partition(run.id), "meta").data
    assert set(blobs.refs(meta)) == {"inputs", "output"}


def test_a_value_that_looks_like_a_reference_is_data_not_a_pointer(store):
    repo = RunRepository(store, group_commit=False)
    store.blobs.put("org#other#blob/secret", b'"another tenant\'s value"')
    forged = {blobs.REFS: {"output": {"key": "org#other#blob/secret", "size_bytes": 1}}}
    run = Run(pipeline_id="p", status=RunStatus.RUNNING)
    repo.run_started(run)
    repo.stage_recorded(run, result("s", forged))
    run.status, run.output = RunStatus.COMPLETED, forged
    repo.run_finished(run)
    assert repo.stage_results(run.id)[0].output == forged
    assert repo.get_run(run.id).output == forged


def test_equal_values_share_one_blob_and_a_lost_blob_is_an_error_not_a_silent_null(store):
    repo = RunRepository(store, group_commit=False)
    run = Run(pipeline_id="p", status=RunStatus.RUNNING)
    repo.run_started(run)
    repo.stage_recorded(run, result("a", BIG))
    repo.stage_recorded(run, result("b", BIG))
    ka = blobs.refs(store.get(repo.partition(run.id), "stage#a").data)["output"]["key"]
    kb = blobs.refs(store.get(repo.partition(run.id), "stage#b").data)["output"]["key"]
    assert ka == kb
    store.blobs.delete(ka)
    with pytest.raises(StorageError, match=r"stage 'a'.*missing from the blob store"):
        repo.stage_results(run.id)


def _fail_blobs(kind, store, tmp_path, request):
    """A real blob store that fails: SQLite without its table, S3 with a bucket that does not exist."""
    if kind == "sqlite":
        store._conn().execute("DROP TABLE blobs")
        return store
    store.close()
    from tests.support.dynamodb import dynamodb_url

    url = dynamodb_url(request.getfixturevalue("moto_endpoint"), blobs=False)
    open_store(url).close()  # creates the table (create=1 would create the bucket too)
    return open_store(url.replace("&create=1", "") + "&blob_bucket=fm-no-such-bucket")


@pytest.mark.parametrize("how", ["no blob store", "failing blob store"])
@pytest.mark.parametrize("group_commit", [False, True])
def test_a_value_that_cannot_be_stored_fails_its_stage_and_its_run(kind, store, tmp_path, request, how, group_commit):
    if how == "no blob store":
        store.blobs = None
    else:
        store = _fail_blobs(kind, store, tmp_path, request)
    repo = RunRepository(store, group_commit=group_commit)
    run = Run(pipeline_id="p", status=RunStatus.RUNNING)
    repo.run_started(run)

    async def record():
        repo.stage_recorded(run, result("fetch", {"body": BIG}))  # queued for the group's write
        await asyncio.sleep(repo.GROUP_WINDOW_S * 5)  # the group is written from the loop's timer: no raise there
        with pytest.raises(ValueNotStoredError, match="fetch"):  # the next stage to finish fails
            repo.stage_recorded(run, result("next", {"n": 1}))

    if group_commit:
        asyncio.run(record())
    else:
        with pytest.raises(ValueNotStoredError, match="fetch"):
            repo.stage_recorded(run, result("fetch", {"body": BIG}))
    (rec,) = [r for r in repo.stage_results(run.id) if r.stage_id == "fetch"]
    assert rec.status is StageStatus.FAILED and rec.output is None
    assert rec.error["code"] == "value_not_stored" and "600" in rec.error["message"]
    assert ("FM_BLOB_BUCKET" in rec.error["hint"]) if how == "no blob store" else rec.error["hint"]
    run.status, run.output = RunStatus.COMPLETED, {"n": 1}
    with pytest.raises(ValueNotStoredError):
        repo.run_finished(run)
    stored = repo.get_run(run.id)
    assert stored.status is RunStatus.FAILED and stored.error["code"] == "value_not_stored"
    store.close()


def test_a_run_output_that_cannot_be_stored_fails_the_run(store):
    store.blobs = None
    repo = RunRepository(store, group_commit=False)
    run = Run(pipeline_id="p", status=RunStatus.RUNNING)
    repo.run_started(run)
    run.status, run.output = RunStatus.COMPLETED, BIG
    with pytest.raises(ValueNotStoredError, match="over the store's item limit"):
        repo.run_finished(run)
    stored = repo.get_run(run.id)
    assert stored.status is RunStatus.FAILED and stored.output is None


def test_small_items_never_touch_the_blob_store(store):
    repo = RunRepository(store, group_commit=False)
    store.blobs = None  # a write that needed it would fail
    run = Run(pipeline_id="p", status=RunStatus.RUNNING, inputs={"x": "y" * (MAX_ITEM_BYTES // 4)})
    repo.run_started(run)
    repo.stage_recorded(run, result("s", "z" * (MAX_ITEM_BYTES // 2)))
    run.status = RunStatus.COMPLETED
    repo.run_finished(run)
    assert repo.get_run(run.id).status is RunStatus.COMPLETED
