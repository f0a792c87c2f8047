"""The template's IAM roles on moto: each function of the local stack runs with its own role's credentials.

``LocalStack(iam=True)`` creates, on moto's server, an administrator for
itself (setup, the pollers that stand in for Lambda's event source
mappings), and for each function a role carrying the policies that the SAM
transform gives it (``sam.function_policies``), assumes it, and hands the
function those temporary credentials. Then it turns moto's IAM
enforcement on (``/moto-api/reset-auth``), so a call the template does not
allow fails as it would on AWS.

Two differences of moto's IAM model are bridged here, and only here:
moto checks DynamoDB and SQS actions against ``Resource: "*"`` (a policy
scoped to the table's ARN never matches), and it authorises a batch or a
transaction as its own action (``sqs:SendMessageBatch``,
``dynamodb:TransactWriteItems``), where AWS checks the per-message and
per-item actions. So the moto copy of each statement names ``*`` as its
resource and adds those aliases of the actions it grants. Resource scoping
is still checked: ``tests/support/aws_calls.py`` matches every recorded call
against the template's policies with their real resources.
"""
from __future__ import annotations

import json
import urllib.request
import uuid
from typing import Any

# what moto asks for, beside the action AWS checks
MOTO_ALIASES = {
    "sqs:sendmessage": ["sqs:SendMessageBatch"],
    "sqs:deletemessage": ["sqs:DeleteMessageBatch"],
    "sqs:changemessagevisibility": ["sqs:ChangeMessageVisibilityBatch"],
    "dynamodb:putitem": ["dynamodb:TransactWriteItems"],
    "dynamodb:updateitem": ["dynamodb:TransactWriteItems"],
    "dynamodb:deleteitem": ["dynamodb:TransactWriteItems"],
    "dynamodb:getitem": ["dynamodb:TransactGetItems"],
}
TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "sts:AssumeRole",
    "Principal": {"Service": "lambda.amazonaws.com", "AWS": "arn:aws:iam::123456789012:root"}}]}


def enforce(endpoint: str, on: bool) -> None:
    """Turn moto's IAM enforcement on (every request from now) or off."""
    body = b"0" if on else b"inf"
    # not form-encoded: moto reads the raw body
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=body, method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - moto on 127.0.0.1
        response.read()


def moto_document(doc: dict[str, Any]) -> dict[str, Any]:
    """A policy document as moto's IAM model needs it (see the module docstring)."""
    statements = doc.get("Statement") or []
    out = []
    for st in statements if isinstance(statements, list) else [statements]:
        actions = st.get("Action") or []
        actions = actions if isinstance(actions, list) else [actions]
        extra = [alias for a in actions for alias in MOTO_ALIASES.get(str(a).lower(), [])]
        out.append({**st, "Action": sorted(set(actions) | set(extra)), "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": out}


def admin(iam: Any) -> dict[str, str]:
    """Credentials of an administrator user (the local stack's own calls)."""
    name = f"local-stack-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="admin", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


def role_credentials(iam: Any, sts: Any, name: str, documents: list[dict[str, Any]]) -> dict[str, str]:
    """Create the role ``name`` with ``documents`` (moto's form) and return credentials of a session in it."""
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    for n, doc in enumerate(documents):
        iam.put_role_policy(RoleName=name, PolicyName=f"policy-{n}", PolicyDocument=json.dumps(moto_document(doc)))
    creds = sts.assume_role(RoleArn=arn, RoleSessionName=name)["Credentials"]
    return {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"]}
