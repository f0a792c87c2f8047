"""Every AWS API call the code makes during a test, and the check that template.yaml's IAM policies allow it.

``AwsCalls.install(monkeypatch)`` hooks botocore: every boto3 session made
from then on gets ``before-parameter-build`` (the call's parameters) and
``before-call`` (its credentials) handlers, so each request of each client
is recorded as (access key, IAM action, resource ARN) before it is sent. The local stack gives every function its own credentials
(``LocalStack.credentials``), so the access key says which function made
the call; calls with the stack's own credentials (setup, the pollers that
stand in for Lambda's event source mapping) are not the code's and are
left out.

``denied(stack)`` matches each call against the function's policies after
the SAM transform (``LocalStack.function_policies``): IAM's action names
(a transaction is checked per item, as AWS does: ``Put`` needs
``dynamodb:PutItem``; an SQS batch as its single-message action) and the
resource the call touches (the table, the queue, the key, the secret).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem",
             "Get": "GetItem"}
_SQS_BATCH = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
              "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}


@dataclass(frozen=True)
class Call:
    access_key: str
    action: str  # IAM's name: service:Action
    resource: str | None  # the ARN it touches (None: not derived; the action alone is checked)


def _table(name: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


def iam_calls(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(IAM action, resource) pairs AWS authorises for one API call."""
    if service == "dynamodb":
        if operation in ("TransactWriteItems", "TransactGetItems"):
            out = []
            for item in params.get("TransactItems") or []:
                (kind, body), = item.items()
                out.append((f"dynamodb:{_TRANSACT[kind]}", _table(body["TableName"])))
            return out
        if operation in ("BatchWriteItem", "BatchGetItem"):
            return [(f"dynamodb:{operation}", _table(t)) for t in params.get("RequestItems") or {}]
        table = params.get("TableName")
        return [(f"dynamodb:{operation}", _table(table) if table else None)]
    if service == "sqs":
        url = params.get("QueueUrl")
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{url.rstrip('/').rsplit('/', 1)[-1]}" if url else None
        return [(f"sqs:{_SQS_BATCH.get(operation, operation)}", arn)]
    if service == "kms":
        key = params.get("KeyId")
        return [(f"kms:{operation}", key if not key or key.startswith("arn:") else f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key}")]
    if service == "secretsmanager":
        sid = params.get("SecretId")
        # a name: AWS adds six random characters to the secret's ARN
        return [(f"secretsmanager:{operation}",
                 sid if not sid or sid.startswith("arn:") else f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{sid}-AbCdEf")]
    if service == "ssm":
        name = params.get("Name")
        return [(f"ssm:{operation}", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name.lstrip('/')}" if name else None)]
    if service == "s3":
        bucket, key = params.get("Bucket"), params.get("Key")
        if operation in ("ListObjectsV2", "ListObjects", "HeadBucket"):
            return [("s3:ListBucket", f"arn:aws:s3:::{bucket}" if bucket else None)]
        # object calls are authorised under the object actions (HeadObject is s3:GetObject)
        action = {"HeadObject": "GetObject", "DeleteObjects": "DeleteObject"}.get(operation, operation)
        return [(f"s3:{action}", f"arn:aws:s3:::{bucket}/{key}" if bucket and key else None)]
    return [(f"{service}:{operation}", None)]


class AwsCalls:
    def __init__(self) -> None:
        self.calls: set[Call] = set()
        self.expected: set[str] = set()  # denials a test provokes on purpose ("Function: service:Action")
        self._lock = threading.Lock()

    @staticmethod
    def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        # before-call sees the serialized request; the call's own parameters are seen here, first
        context["aws_calls.params"] = dict(params)

    def _before_call(self, model: Any, request_signer: Any, context: dict[str, Any], **_: Any) -> None:
        # botocore keeps the client's credentials on its signer; the access key names the function
        creds = getattr(request_signer, "_credentials", None)
        key = getattr(creds, "access_key", None) or ""
        service = model.service_model.signing_name
        params = context.get("aws_calls.params") or {}
        with self._lock:
            for action, resource in iam_calls(service, model.name, params):
                self.calls.add(Call(key, action, resource))

    def install(self, monkeypatch: Any) -> "AwsCalls":
        import botocore.session

        from flowmason.plugins.dynamodb_store import store

        original = botocore.session.get_session

        def get_session(env_vars: Any = None) -> Any:
            session = original(env_vars)
            session.register("before-parameter-build", self._keep_params)
            session.register("before-call", self._before_call)
            return session

        monkeypatch.setattr(botocore.session, "get_session", get_session)
        # clients made before the hook would go unrecorded
        monkeypatch.setattr(store, "_clients", {})
        return self

    def by_function(self, stack: Any) -> dict[str, set[Call]]:
        names = {c["aws_access_key_id"]: name for name, c in stack.credentials.items()}
        out: dict[str, set[Call]] = {}
        for call in self.calls:
            name = names.get(call.access_key)
            if name is not None:
                out.setdefault(name, set()).add(call)
        return out

    def denied(self, stack: Any) -> list[str]:
        """The recorded calls of ``stack``'s functions that their template policies do not allow."""
        from flowmason.functions.sam import allows

        policies = stack.function_policies()
        out = []
        for name, calls in sorted(self.by_function(stack).items()):
            for call in sorted(calls, key=lambda c: (c.action, c.resource or "")):
                if not allows(policies[name], call.action, call.resource) and f"{name}: {call.action}" not in self.expected:
                    out.append(f"{name}: {call.action} on {call.resource or '*'}")
        return out
