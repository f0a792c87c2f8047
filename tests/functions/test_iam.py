"""template.yaml's IAM policies against the code's AWS calls: recorded per function, and enforced by moto.

The recorder (tests/support/aws_calls.py, checked after every test that
makes a stack) names a call the template does not grant; with
``LocalStack(iam=True)`` moto refuses it, as AWS would. A template without
``dynamodb:BatchWriteItem`` for the worker is the deploy blocker the
acceptance review found: every stage checkpoint uses it.
"""
from __future__ import annotations

import copy

import pytest

from flowmason.kernel.runs import DEFAULT_ORG, RunRepository, namespace

from .components import chain
from .conftest import call, finished_result, stack_denied


def _without_batch_write(template: dict) -> dict:
    doc = copy.deepcopy(template)
    statement = doc["Resources"]["WorkerFunction"]["Properties"]["Policies"][0]["Statement"][0]
    statement["Action"] = [a for a in statement["Action"] if a != "dynamodb:BatchWriteItem"]
    return doc


@pytest.fixture
def template():
    from flowmason.functions.local_stack import load_template

    return load_template()


def test_a_run_through_the_api_and_the_worker_works_with_only_the_template_s_permissions(
        make_stack, api_handler, tally_plugin, aws_calls):
    stack = make_stack(iam=True)
    handler = api_handler()
    status, saved = call(handler, "POST", "/pipelines", chain("three", 3))
    assert status == 201, saved
    _, run = call(handler, "POST", "/runs", {"pipeline_id": "three", "inputs": {"x": "hi"}})
    result = finished_result(handler, run["id"])
    assert result["status"] == "completed", result
    assert tally_plugin.DONE["s3"] == 1
    # moto did check: a call with the worker's credentials outside its policy is refused
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="AccessDenied|not authorized"):
        stack.client("dynamodb", "WorkerFunction").scan(TableName=stack.table)
    aws_calls.expected.add("WorkerFunction: dynamodb:Scan")  # the refused call is the point


def test_the_recorder_names_a_call_the_template_does_not_grant(
        make_stack, api_handler, tally_plugin, aws_calls, template):
    stack = make_stack(template=_without_batch_write(template), iam=False)
    handler = api_handler()
    _, run = call(handler, "POST", "/runs", {"pipeline": chain("two", 2), "inputs": {"x": 0}})
    assert finished_result(handler, run["id"])["status"] == "completed"  # moto does not enforce here
    denied = stack_denied(aws_calls, stack)
    assert denied == [f"WorkerFunction: dynamodb:BatchWriteItem on arn:aws:dynamodb:us-east-1:123456789012:table/{stack.table}"]
    aws_calls.expected.add("WorkerFunction: dynamodb:BatchWriteItem")  # seen; the fixture's check would fail on it


def test_with_checkpoints_denied_the_worker_fails_the_message_instead_of_acknowledging_it(
        make_stack, api_handler, tally_plugin, aws_calls, template, monkeypatch):
    monkeypatch.setenv("FM_VISIBILITY_S", "1")
    stack = make_stack(template=_without_batch_write(template), iam=True, visibility_timeout=1, max_receive_count=2)
    handler = api_handler()
    _, run = call(handler, "POST", "/runs", {"pipeline": chain("denied", 2), "inputs": {"x": 0}})
    # never "completed" with its stages unrecorded: the message failed every delivery, then the dead-letter
    # function (which may write) failed the run with the worker's last error
    result = finished_result(handler, run["id"], timeout=90)
    assert result["status"] == "failed", result
    assert result["error"]["code"] == "dead_letter"
    assert "BatchWriteItem" in result["error"]["message"] or "AccessDenied" in result["error"]["message"]
    repo = RunRepository(stack.store("DeadLetterFunction"), namespace(DEFAULT_ORG))
    assert repo.get_run(run["id"]).status.value == "failed"
    aws_calls.expected.add("WorkerFunction: dynamodb:BatchWriteItem")  # the denied call is this test's point
