"""template.yaml: the SAM transform and cfn-lint on its output pass, it declares what the code expects, and the local stack builds it.

The CI gate is samtranslator's transform followed by cfn-lint on the
CloudFormation it makes: plain cfn-lint (and ``sam validate --lint``) read
the SAM template and miss what only the transformed one shows, such as an
event source mapping whose queue's visibility is shorter than its
function's timeout (E3505) or a log level Lambda does not accept.
"""
from __future__ import annotations

import copy
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


def _cfn_lint(path: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-c", "import sys, cfnlint.runner; sys.exit(cfnlint.runner.main())"]
    return subprocess.run([*command, "--format", "parseable", str(path)], capture_output=True, text=True, timeout=120)


def _lint_transformed(doc: dict, tmp_path: Path, name: str = "transformed.json") -> subprocess.CompletedProcess:
    from flowmason.functions.sam import transform

    out = tmp_path / name
    out.write_text(json.dumps(transform(doc)), encoding="utf-8")
    return _cfn_lint(out)


def test_cfn_lint_finds_no_errors_in_the_sam_template():
    pytest.importorskip("cfnlint")
    # cfn-lint exits 2 on errors, 4 on warnings, 8 on informational findings; only errors fail CI
    done = _cfn_lint(TEMPLATE)
    assert done.returncode & 2 == 0, done.stdout + done.stderr
    assert done.returncode in (0, 4, 8, 12), done.stdout + done.stderr


def test_the_sam_transform_and_cfn_lint_on_its_output_find_nothing(template, tmp_path):
    pytest.importorskip("samtranslator")
    done = _lint_transformed(template, tmp_path)
    # warnings fail too: W1030 is how a log level Lambda refuses shows up
    assert done.returncode in (0, 8), done.stdout + done.stderr


def test_the_gate_catches_a_dead_letter_queue_shorter_than_its_function(template, tmp_path):
    # what plain cfn-lint passed before: the dead-letter queue at SQS's default 30 s under a 60 s function
    pytest.importorskip("samtranslator")
    broken = copy.deepcopy(template)
    del broken["Resources"]["DeadLetterQueue"]["Properties"]["VisibilityTimeout"]
    done = _lint_transformed(broken, tmp_path, "broken.json")
    assert "E3505" in done.stdout, done.stdout + done.stderr


def test_log_levels_are_ones_lambda_accepts(template):
    allowed = set(template["Parameters"]["LogLevel"]["AllowedValues"])
    assert allowed <= {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
    assert template["Parameters"]["LogLevel"]["Default"] in allowed


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
    dead = res["DeadLetterFunction"]["Properties"]
    assert dead["Events"]["DeadLetters"]["Properties"]["Queue"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    # Lambda refuses an event source mapping whose queue's visibility is shorter than the function's timeout
    assert queue["VisibilityTimeout"] >= worker["Timeout"]
    assert res["DeadLetterQueue"]["Properties"]["VisibilityTimeout"] >= dead["Timeout"]
    # ... and a crashed worker's message must not wait long for the queue: the worker's heartbeat holds it
    assert queue["VisibilityTimeout"] <= worker["Timeout"] + 120
    assert 0 < int(worker["Environment"]["Variables"]["FM_VISIBILITY_S"]) <= 300


def _function_env(template: dict, name: str) -> dict:
    env = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    env.update(template["Resources"][name]["Properties"].get("Environment", {}).get("Variables") or {})
    return env


FUNCTIONS = ("ApiFunction", "WorkerFunction", "DeadLetterFunction")


def test_the_deployed_api_is_closed_by_default(template):
    from flowmason.kernel.settings import Settings

    api = _function_env(template, "ApiFunction")
    assert api["FM_AUTH"] == "1"
    for name in FUNCTIONS:
        env = {k: str(v) for k, v in _function_env(template, name).items() if isinstance(v, (str, int))}
        settings = Settings.from_env(env)
        # the SSRF guard: nothing turns it off and nothing opens an allow-list
        assert settings.http_deny_private is True, name
        assert not [k for k in env if k.startswith("FM_HTTP_") and k != "FM_HTTP_DENY_PRIVATE"], name
    # the auth plugin encrypts its signing keys with this key (and may use nothing else of KMS)
    assert api["FM_KMS_KEY_ID"] == {"Ref": "SigningKeysKey"}
    assert template["Resources"]["SigningKeysKey"]["Type"] == "AWS::KMS::Key"


def test_every_function_logs_into_a_group_with_a_retention(template):
    res = template["Resources"]
    for name in FUNCTIONS:
        group = res[name]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        props = res[group]["Properties"]
        assert props["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert props["LogGroupName"] == {"Fn::Sub": res[name]["Properties"]["FunctionName"]["Fn::Sub"].join(
            ["/aws/lambda/", ""])}
    assert res["ApiAccessLogs"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_cors_and_reserved_concurrency_are_parameters(template):
    cors = template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    assert cors["Fn::If"][0] == "HasCors" and cors["Fn::If"][1]["AllowOrigins"] == {"Fn::Split": [",", {"Ref": "CorsAllowOrigins"}]}
    assert template["Parameters"]["CorsAllowOrigins"]["Default"] == ""  # no origin unless one is given
    for name, param in (("ApiFunction", "ApiReservedConcurrency"), ("WorkerFunction", "WorkerReservedConcurrency")):
        reserved = template["Resources"][name]["Properties"]["ReservedConcurrentExecutions"]["Fn::If"]
        assert reserved[1] == {"Ref": param}


def test_policies_are_scoped_to_the_stacks_own_resources(template):
    res = template["Resources"]
    own = {"Table", "RunQueue", "SigningKeysKey"}
    for name in FUNCTIONS:
        for policy in res[name]["Properties"]["Policies"]:
            if "Statement" not in policy:
                assert policy == {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["RunQueue", "QueueName"]}}}
                continue
            for statement in policy["Statement"]:
                if "Fn::If" in statement:  # the provider keys' secret or parameter, when one is named
                    statement = statement["Fn::If"][1]
                    assert "Fn::Sub" in statement["Resource"] and "*" not in statement["Resource"]["Fn::Sub"]
                    continue
                if "BlobBucket" in json.dumps(statement["Resource"]):
                    assert_blob_statement(statement)
                    continue
                assert statement["Resource"]["Fn::GetAtt"][0] in own, statement
                assert all("*" not in a for a in statement["Action"])
                assert "dynamodb:Scan" not in statement["Action"]


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
                   if "BlobBucket" in json.dumps(s.get("Resource"))]
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
        assert attrs["VisibilityTimeout"] == str(template["Resources"]["RunQueue"]["Properties"]["VisibilityTimeout"])
        dlq = sqs.get_queue_attributes(QueueUrl=stack.dlq_url, AttributeNames=["QueueArn", "VisibilityTimeout"])["Attributes"]
        assert json.loads(attrs["RedrivePolicy"]) == {"deadLetterTargetArn": dlq["QueueArn"], "maxReceiveCount": 5}
        assert dlq["VisibilityTimeout"] == "360"
        assert stack.bucket and f"blob_bucket={stack.bucket}" in stack.store_url
        stack.client("s3").head_bucket(Bucket=stack.bucket)
