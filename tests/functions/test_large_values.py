"""Large values on the AWS path: the Lambda API and worker on moto's DynamoDB + S3 + SQS (127.0.0.1).

Values over DynamoDB's item limit go to the stack's S3 bucket; the API
answers them whole, and an answer stays under Lambda's 6 MB response limit:
past 4 MB a value is a link that redirects (307) to a presigned S3 URL.
"""
from __future__ import annotations

import json

import httpx

from flowmason.kernel import blobs
from flowmason.kernel.runs import DEFAULT_ORG, RunRepository, namespace
from flowmason.kernel.storage import open_store

from .components import chain
from .conftest import call, finished_result, http_event

LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024


def _pages(handler, run_id: str) -> list[dict]:
    items, cursor = [], None
    for _ in range(20):
        status, page = call(handler, "GET", f"/runs/{run_id}/stages", query=f"limit=2&cursor={cursor}" if cursor else "limit=2")
        assert status == 200, page
        items += page["items"]
        cursor = page["cursor"]
        if cursor is None:
            return items
    raise AssertionError("more pages than stages")


def test_600_kb_outputs_are_stored_in_s3_and_answered_whole(make_stack, api_handler):
    stack = make_stack()
    handler = api_handler()
    big = "x" * 600_000
    status, run = call(handler, "POST", "/runs", {"pipeline": chain("big", 3), "inputs": {"x": big}})
    assert status == 202, run
    result = finished_result(handler, run["id"], timeout=90)
    assert result["status"] == "completed" and result["output"] == {"stage": "s3", "value": f"{big}-3"}

    items = _pages(handler, run["id"])
    outputs = {}
    for item in items:  # each page holds what fits its 4 MB of values; the rest come linked
        for name, link in (item.get("value_links") or {}).items():
            response = handler(http_event("GET", link["href"]), None)
            assert response["statusCode"] == 200
            item[name] = json.loads(response["body"])
        outputs[item["stage_id"]] = item["output"]
    assert outputs == {f"s{i}": {"stage": f"s{i}", "value": f"{big}-{i}"} for i in range(1, 4)}

    # the checkpoints in DynamoDB are small references; the values are objects in the stack's bucket
    store = open_store(stack.store_url)
    item = store.get(RunRepository(store, namespace(DEFAULT_ORG)).partition(run["id"]), "stage#s2").data
    key = blobs.refs(item)["output"]["key"]
    head = stack.client("s3").head_object(Bucket=stack.bucket, Key=key)
    assert head["ContentLength"] == blobs.refs(item)["output"]["size_bytes"] > 600_000


def test_a_value_over_the_response_budget_redirects_to_a_presigned_s3_url(make_stack, api_handler, monkeypatch):
    make_stack()
    monkeypatch.setenv("FM_MAX_BODY_BYTES", str(12 * 1024 * 1024))
    handler = api_handler()
    huge = "y" * (5 * 1024 * 1024)
    status, run = call(handler, "POST", "/runs", {"pipeline": chain("huge", 1), "inputs": {"x": huge}})
    assert status == 202, run
    result = finished_result(handler, run["id"], timeout=90)
    assert result["status"] == "completed" and result["output"] is None
    link = result["value_links"]["output"]
    for path in (f"/runs/{run['id']}", f"/runs/{run['id']}/result", f"/runs/{run['id']}/stages"):
        response = handler(http_event("GET", path), None)
        assert response["statusCode"] == 200 and len(response["body"].encode()) < LAMBDA_RESPONSE_LIMIT, path
    response = handler(http_event("GET", link["href"]), None)
    assert response["statusCode"] == 307 and not response.get("body")
    location = response["headers"]["location"]
    assert "X-Amz-Signature=" in location
    got = httpx.get(location, timeout=30)  # no credentials: the URL is the permission
    assert got.status_code == 200 and got.json() == {"stage": "s1", "value": f"{huge}-1"}


def test_deployed_without_the_bucket_large_values_are_refused_with_a_clear_error(make_stack, api_handler, monkeypatch):
    stack = make_stack()
    monkeypatch.delenv("FM_BLOB_BUCKET")
    monkeypatch.setenv("FM_STORE", stack.store_url.split("&blob_bucket=")[0])
    monkeypatch.setenv("FM_MAX_BODY_BYTES", str(2 * 1024 * 1024))
    handler = api_handler()
    long = {"id": "long", "name": "long", "stages": [
        {"id": "s1", "type": "json-transform", "config": {"template": {"text": "p" * 500_000}}}]}
    status, body = call(handler, "POST", "/pipelines", long)
    assert status == 503 and body["error"]["code"] == "value_not_stored"
    assert "no blob store" in body["error"]["message"] and "FM_BLOB_BUCKET" in body["error"]["hint"]
    status, body = call(handler, "POST", "/runs", {"pipeline": chain("c", 1), "inputs": {"x": "x" * 600_000}})
    assert status == 422 and body["error"]["field"] == "inputs" and "blob store" in body["error"]["message"]
