"""The local AWS stack: moto on 127.0.0.1, the table and queues of template.yaml, a Lambda-like poller.

``python -m flowmason.functions.local_stack`` (or ``fm serve --aws-local``)
starts moto's threaded server with dummy credentials, creates the DynamoDB
table, the S3 bucket for large values and the SQS queues as ``template.yaml`` declares them (key
schema, TTL, point-in-time recovery, visibility timeout, redrive policy to
the dead-letter queue), and runs pollers that do what Lambda's SQS event
source mapping does: receive a batch, call the worker handler with an SQS
event and a context whose remaining time counts down from the function's
``Timeout``, delete the records not listed in ``batchItemFailures``, and
leave the whole batch for redelivery when the invocation raises. The
dead-letter queue is polled into ``worker.dead_letter_handler``.

So the exact Lambda code paths (``functions.api``, ``functions.worker``)
run on a laptop. Tests shorten the visibility timeout and the function
timeout to exercise redelivery and continuation in seconds.
"""
from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from flowmason.kernel.errors import ConfigError

log = logging.getLogger("flowmason.local_stack")

REGION = "us-east-1"
# the repository's template (an editable install); FM_TEMPLATE or --template elsewhere
DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


def load_template(path: str | Path | None = None) -> dict[str, Any]:
    """template.yaml decoded with CloudFormation's short forms (``!Ref``, ``!GetAtt``, ``!Sub``)."""
    try:
        from cfnlint.decode import decode_str
    except ImportError:
        raise ConfigError("the local AWS stack reads template.yaml with cfn-lint, which is not installed",
                          hint="pip install 'flowmason[aws-local]'") from None

    from flowmason.kernel.settings import get_settings

    p = Path(path or get_settings().template or DEFAULT_TEMPLATE)
    if not p.is_file():
        raise ConfigError(f"no template at {p}", field="template", hint="pass --template path/to/template.yaml")
    template, problems = decode_str(p.read_text(encoding="utf-8"))
    if problems or template is None:
        raise ValueError(f"{p}: cannot read the template: {problems[0] if problems else 'empty'}")
    return template


class _Resolver:
    """The few intrinsic functions the table and queue properties use."""

    def __init__(self, parameters: dict[str, Any]) -> None:
        self.parameters = parameters
        self.physical: dict[str, dict[str, Any]] = {}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                name, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.physical[name][attr]
            if key == "Fn::Sub":
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(self.sub(m.group(1))), arg)
        return {k: self(v) for k, v in value.items()}

    def ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        return self.physical[name]["Ref"]

    def sub(self, name: str) -> Any:
        if "." in name:
            res, attr = name.split(".", 1)
            return self.physical[res][attr]
        return self.ref(name)


class LocalContext:
    """A Lambda context: names, a request id, and the remaining time of the invocation."""

    def __init__(self, function_name: str, timeout_s: float, memory_mb: int = 1024) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalStack:
    """Start with ``start()`` (or ``with LocalStack() as stack``); ``stop()`` ends everything."""

    def __init__(
        self, template: str | Path | None = None, *, visibility_timeout: int | None = None,
        worker_timeout_s: float | None = None, batch_size: int | None = None, max_receive_count: int | None = None,
        concurrency: int = 4, fanout_min_items: int | None = None, chunk_size: int | None = None,
        poll_interval_s: float = 0.05, run_worker: bool = True,
    ) -> None:
        self.template = load_template(template)
        self.overrides = {"visibility_timeout": visibility_timeout, "max_receive_count": max_receive_count}
        self.worker_timeout_s = worker_timeout_s
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.fanout_min_items = fanout_min_items
        self.chunk_size = chunk_size
        self.poll_interval_s = poll_interval_s
        self.run_worker = run_worker
        self.suffix = f"-{uuid.uuid4().hex[:8]}"
        self.endpoint = ""
        self.table = ""
        self.bucket = ""
        self.queue_url = ""
        self.dlq_url = ""
        self.invocations = 0
        self.crashes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._exit = contextlib.ExitStack()

    # -- lifecycle --
    def __enter__(self) -> "LocalStack":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def store_url(self) -> str:
        url = f"dynamodb://{self.table}?endpoint_url={self.endpoint}&region={REGION}"
        return f"{url}&blob_bucket={self.bucket}" if self.bucket else url

    def start(self) -> "LocalStack":
        from .moto_server import moto_server  # says which extra to install when moto is missing

        self.endpoint = self._exit.enter_context(moto_server())
        try:
            self._create_resources()
            if self.run_worker:
                self._start_pollers()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()
        if self.endpoint:
            # moto's backends outlive the server in this process: drop what this stack made
            with contextlib.suppress(Exception):
                if self.table:
                    self.client("dynamodb").delete_table(TableName=self.table)
                for url in (self.queue_url, self.dlq_url):
                    if url:
                        self.sqs().delete_queue(QueueUrl=url)
        self._exit.close()

    # -- clients and services --
    def client(self, service: str) -> Any:
        import boto3

        return boto3.session.Session().client(service, region_name=REGION, endpoint_url=self.endpoint)

    def sqs(self) -> Any:
        from .sqs import sqs_client

        return sqs_client(endpoint_url=self.endpoint, region=REGION)

    def jobs(self) -> Any:
        from flowmason.kernel.storage import open_store
        from flowmason.plugins.durable import Jobs

        from .sqs import SqsQueue

        from flowmason.kernel.settings import Settings

        # what the template gives the worker (YAML may write numbers; the environment holds text)
        declared = Settings.from_env({k: str(v) for k, v in self._function_env("WorkerFunction").items()})
        fanout = self.fanout_min_items if self.fanout_min_items is not None else declared.fanout_min_items
        chunk = self.chunk_size if self.chunk_size is not None else declared.fanout_chunk_size
        return Jobs(open_store(self.store_url), SqsQueue(self.queue_url, self.sqs()), fanout_min_items=fanout, chunk_size=chunk)

    def api_services(self) -> Any:
        """What ``functions.api`` builds from its environment, pointed at this stack."""
        from flowmason.kernel.storage import open_store
        from flowmason.plugins.http_api.services import Services

        from .sqs import SqsQueue

        return Services(open_store(self.store_url), SqsQueue(self.queue_url, self.sqs()))

    def environment(self) -> dict[str, str]:
        """Variables that point the Lambda modules (and boto3) at this stack."""
        return {"FM_STORE": self.store_url, "FM_QUEUE_URL": self.queue_url, "FM_BLOB_BUCKET": self.bucket,
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

    # -- resources from the template --
    def _resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: r for name, r in self.template["Resources"].items() if r.get("Type") == kind}

    def _function_env(self, name: str) -> dict[str, Any]:
        fn = self.template["Resources"].get(name, {}).get("Properties", {})
        return {k: self._resolve(v) for k, v in (fn.get("Environment", {}).get("Variables") or {}).items()}

    def _create_resources(self) -> None:
        params = {name: p.get("Default") for name, p in (self.template.get("Parameters") or {}).items()}
        params.update({"AWS::Region": REGION, "AWS::AccountId": "123456789012", "AWS::URLSuffix": "amazonaws.com"})
        self._resolve = _Resolver(params)
        ddb = self.client("dynamodb")
        for name, res in self._resources("AWS::DynamoDB::Table").items():
            props = self._resolve({k: v for k, v in res["Properties"].items() if k != "DeletionProtectionEnabled"})
            # moto keeps one backend per process: a suffix keeps two stacks (two tests) apart
            table = props["TableName"] = f"{props['TableName']}{self.suffix}"
            args = {k: props[k] for k in ("TableName", "AttributeDefinitions", "KeySchema", "BillingMode",
                                           "GlobalSecondaryIndexes", "LocalSecondaryIndexes") if k in props}
            desc = ddb.create_table(**args)["TableDescription"]
            ddb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
            if props.get("TimeToLiveSpecification"):
                ddb.update_time_to_live(TableName=table, TimeToLiveSpecification=props["TimeToLiveSpecification"])
            if props.get("PointInTimeRecoverySpecification"):
                ddb.update_continuous_backups(TableName=table,
                                              PointInTimeRecoverySpecification=props["PointInTimeRecoverySpecification"])
            self._resolve.physical[name] = {"Ref": table, "Arn": desc["TableArn"]}
            self.table = table
        s3 = self.client("s3")
        for name in self._resources("AWS::S3::Bucket"):
            # the template leaves the name to CloudFormation; here it is made the same way, unique per stack
            bucket = f"flowmason-{name.lower()}{self.suffix}"
            s3.create_bucket(Bucket=bucket)
            self._resolve.physical[name] = {"Ref": bucket, "Arn": f"arn:aws:s3:::{bucket}"}
            self.bucket = bucket
        sqs = self.sqs()
        queues = self._resources("AWS::SQS::Queue")
        # dead-letter queues first: the others' redrive policies point at them
        order = sorted(queues, key=lambda n: "RedrivePolicy" in queues[n].get("Properties", {}))
        for name in order:
            props = self._resolve(queues[name].get("Properties", {}))
            attrs: dict[str, str] = {}
            for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"):
                if key in props:
                    attrs[key] = str(props[key])
            if "RedrivePolicy" in props:
                policy = dict(props["RedrivePolicy"])
                if self.overrides["max_receive_count"] is not None:
                    policy["maxReceiveCount"] = self.overrides["max_receive_count"]
                attrs["RedrivePolicy"] = json.dumps(policy)
                if self.overrides["visibility_timeout"] is not None:
                    attrs["VisibilityTimeout"] = str(self.overrides["visibility_timeout"])
            qname = f"{props.get('QueueName') or name}{self.suffix}"
            url = sqs.create_queue(QueueName=qname, Attributes=attrs)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self._resolve.physical[name] = {"Ref": url, "Arn": arn, "QueueName": qname, "QueueUrl": url}
            if "RedrivePolicy" in props:
                self.queue_url = url
            else:
                self.dlq_url = url

    # -- the event source mapping --
    def _start_pollers(self) -> None:
        from . import worker

        worker.configure(self.jobs())
        for fn_name, handler in (("WorkerFunction", worker.handler), ("DeadLetterFunction", worker.dead_letter_handler)):
            props = self.template["Resources"][fn_name]["Properties"]
            event = next(e for e in props["Events"].values() if e["Type"] == "SQS")["Properties"]
            queue_name = self._resolve(event["Queue"])
            url = next(p["QueueUrl"] for p in self._resolve.physical.values() if p.get("Arn") == queue_name)
            batch = self.batch_size if (self.batch_size and fn_name == "WorkerFunction") else int(event.get("BatchSize", 10))
            timeout = float(props.get("Timeout", 3))
            if fn_name == "WorkerFunction" and self.worker_timeout_s is not None:
                timeout = self.worker_timeout_s
            threads = self.concurrency if fn_name == "WorkerFunction" else 1
            for i in range(threads):
                t = threading.Thread(target=self._poll, args=(fn_name, url, queue_name, handler, batch, timeout),
                                     name=f"poller-{fn_name}-{i}", daemon=True)
                t.start()
                self._threads.append(t)

    def _poll(self, fn_name: str, url: str, arn: str, handler: Callable[..., Any], batch: int, timeout: float) -> None:
        sqs = self.sqs()
        while not self._stop.is_set():
            try:
                # short polls: moto's long poll holds its backend lock and would stall every other request
                got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=batch, WaitTimeSeconds=0,
                                          AttributeNames=["All"], MessageAttributeNames=["All"])
            except Exception:  # noqa: BLE001 - the server is going away at stop()
                if self._stop.is_set():
                    return
                log.exception("receive failed")
                time.sleep(0.2)
                continue
            messages = got.get("Messages") or []
            if not messages:
                self._stop.wait(self.poll_interval_s)
                continue
            event = {"Records": [{
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m.get("Attributes", {}), "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""), "eventSource": "aws:sqs", "eventSourceARN": arn,
                "awsRegion": REGION,
            } for m in messages]}
            with self._lock:
                self.invocations += 1
            try:
                result = handler(event, LocalContext(fn_name, timeout)) or {}
            except BaseException:  # noqa: BLE001 - a crashed invocation: Lambda retries the whole batch later
                with self._lock:
                    self.crashes += 1
                log.warning("%s invocation crashed; its %d message(s) come back after the visibility timeout",
                            fn_name, len(messages), exc_info=True)
                continue
            failed = {f.get("itemIdentifier") for f in result.get("batchItemFailures") or []}
            done = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages) if m["MessageId"] not in failed]
            if done:
                sqs.delete_message_batch(QueueUrl=url, Entries=done)


def main() -> None:  # pragma: no cover - interactive
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", default=None, help="template.yaml (default: the repository's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    with LocalStack(args.template) as stack:
        print("local AWS stack running; export these to point FlowMason at it:")
        for key, value in stack.environment().items():
            print(f"  export {key}='{value}'")
        print("Ctrl-C stops it.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover
    main()
