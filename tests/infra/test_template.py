"""template.yaml: cfn-lint passes, it declares what the code expects, and the local stack builds it."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def template():
    pytest.importorskip("cfnlint")
    from flowmason.functions.local_stack import load_template

    return load_template(TEMPLATE)


def test_cfn_lint_finds_no_errors():
    pytest.importorskip("cfnlint")
    exe = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-c", "import sys, cfnlint.runner; sys.exit(cfnlint.runner.main())"]
    # cfn-lint exits 2 on errors, 4 on warnings, 8 on informational findings; only errors fail CI
    done = subprocess.run([*command, "--format", "parseable", str(TEMPLATE)], capture_output=True, text=True)
    assert done.returncode & 2 == 0, done.stdout + done.stderr
    assert done.returncode in (0, 4, 8, 12), done.stdout + done.stderr


def test_the_table_is_the_one_the_dynamodb_store_expects(template):
    from flowmason.plugins.dynamodb_store.store import table_definition

    expected = table_definition("t")
    props = template["Resources"]["Table"]["Properties"]
    assert props["KeySchema"] == expected["KeySchema"]
    assert props["AttributeDefinitions"] == expected["AttributeDefinitions"]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_the_functions_point_at_handlers_that_exist(template):
    import importlib

    for name in ("ApiFunction", "WorkerFunction", "DeadLetterFunction"):
        handler = template["Resources"][name]["Properties"]["Handler"]
        module, attr = handler.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), attr)), handler


def test_the_worker_reports_partial_batch_failures_and_failing_runs_reach_the_dead_letter_queue(template):
    res = template["Resources"]
    worker = res["WorkerFunction"]["Properties"]
    event = worker["Events"]["Runs"]["Properties"]
    assert event["Queue"] == {"Fn::GetAtt": ["RunQueue", "Arn"]}
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = res["RunQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    # a message must stay invisible for longer than the worker may run, or a live run is delivered twice
    assert queue["VisibilityTimeout"] >= worker["Timeout"]
    dead = res["DeadLetterFunction"]["Properties"]["Events"]["DeadLetters"]["Properties"]
    assert dead["Queue"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}


def test_policies_are_scoped_to_the_table_and_the_run_queue(template):
    res = template["Resources"]
    for name in ("ApiFunction", "WorkerFunction", "DeadLetterFunction"):
        for policy in res[name]["Properties"]["Policies"]:
            if "Statement" in policy:
                for statement in policy["Statement"]:
                    if "BlobBucket" in json.dumps(statement["Resource"]):
                        assert_blob_statement(statement)
                        continue
                    assert statement["Resource"] == {"Fn::GetAtt": ["Table", "Arn"]}
                    assert all(a.startswith("dynamodb:") and "*" not in a for a in statement["Action"])
                    assert "dynamodb:Scan" not in statement["Action"]
            else:
                assert policy == {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["RunQueue", "QueueName"]}}}


def assert_blob_statement(statement):
    """The blob bucket's statements: object reads and writes on its objects, listing on the bucket, nothing else."""
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    if statement["Resource"] == {"Fn::Sub": "${BlobBucket.Arn}/*"}:
        assert sorted(actions) == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    else:
        assert statement["Resource"] == {"Fn::GetAtt": ["BlobBucket", "Arn"]} and actions == ["s3:ListBucket"]


def test_the_blob_bucket_is_private_encrypted_tls_only_and_named_to_every_function(template):
    res = template["Resources"]
    props = res["BlobBucket"]["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    assert res["BlobBucket"]["DeletionPolicy"] == "Retain"
    (deny,) = res["BlobBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert template["Globals"]["Function"]["Environment"]["Variables"]["FM_BLOB_BUCKET"] == {"Ref": "BlobBucket"}
    for name in ("ApiFunction", "WorkerFunction", "DeadLetterFunction"):
        granted = [s for p in res[name]["Properties"]["Policies"] for s in p.get("Statement", [])
                   if "BlobBucket" in json.dumps(s["Resource"])]
        assert len(granted) == 2, name


def test_the_local_stack_creates_the_table_and_queues_the_template_declares(template):
    pytest.importorskip("moto")
    from flowmason.functions.local_stack import LocalStack

    with LocalStack(TEMPLATE, run_worker=False) as stack:
        ddb = stack.client("dynamodb")
        table = ddb.describe_table(TableName=stack.table)["Table"]
        assert table["KeySchema"] == template["Resources"]["Table"]["Properties"]["KeySchema"]
        assert ddb.describe_time_to_live(TableName=stack.table)["TimeToLiveDescription"]["AttributeName"] == "expires_at"
        backups = ddb.describe_continuous_backups(TableName=stack.table)["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
        sqs = stack.sqs()
        attrs = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["All"])["Attributes"]
        assert attrs["VisibilityTimeout"] == "5400"
        dlq_arn = sqs.get_queue_attributes(QueueUrl=stack.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        assert json.loads(attrs["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}
        assert stack.bucket and f"blob_bucket={stack.bucket}" in stack.store_url
        stack.client("s3").head_bucket(Bucket=stack.bucket)
