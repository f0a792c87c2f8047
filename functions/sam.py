"""template.yaml through the SAM transform, offline: the CloudFormation AWS deploys, and each function's IAM policies.

``transform(template)`` runs samtranslator the way ``sam deploy`` has
CloudFormation run it (policy templates such as ``SQSSendMessagePolicy``
expanded, the roles, event source mappings and API made), without AWS:
managed policies are referred to by ARN and never looked up, and each
``CodeUri`` folder is replaced by an S3 URI, as ``sam package`` does.
CI runs cfn-lint on the result (plain cfn-lint reads the SAM template and
misses what only the transformed one shows, such as a queue visibility
below its function's timeout).

``function_policies(transformed, resolve)`` gives each function's policy
documents (its role's inline policies and the AWS managed ones SAM
attached), with intrinsic functions resolved by ``resolve`` (the local
stack's resolver: parameters, conditions and the physical names of what it
created). The local stack gives moto these roles (``LocalStack(iam=True)``)
and the tests check every AWS call the code makes against them.
samtranslator is an optional dependency (the ``aws-local`` extra).
"""
from __future__ import annotations

import copy
import fnmatch
import os
from typing import Any, Callable, Iterable

from flowmason.kernel.errors import ConfigError

PLACEHOLDER_CODE = "s3://flowmason-placeholder/code.zip"


class _OfflinePolicies:
    """samtranslator's managed-policy loader without IAM: only ARNs are named in templates here."""

    def load(self) -> dict[str, str]:
        return {}


def transform(template: dict[str, Any], parameters: dict[str, Any] | None = None, *,
              region: str = "us-east-1") -> dict[str, Any]:
    """The template after the SAM transform (a new dict; ``template`` is left alone)."""
    try:
        from samtranslator.translator.transform import transform as sam_transform
    except ImportError:
        raise ConfigError("reading template.yaml's IAM roles needs the SAM translator, which is not installed",
                          hint="pip install 'flowmason[aws-local]'") from None
    doc = copy.deepcopy(template)
    for res in (doc.get("Resources") or {}).values():
        if res.get("Type") == "AWS::Serverless::Function":
            res.setdefault("Properties", {})["CodeUri"] = PLACEHOLDER_CODE
    code = ((doc.get("Globals") or {}).get("Function") or {})
    if "CodeUri" in code:
        code["CodeUri"] = PLACEHOLDER_CODE
    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region  # the translator builds ARNs for this region
    try:
        return sam_transform(doc, parameters or {}, _OfflinePolicies())  # type: ignore[arg-type]
    finally:
        if saved is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved


def managed_policy(arn: str) -> dict[str, Any]:
    """The document of an AWS managed policy (from the copy moto ships: no network)."""
    from .moto_server import managed_policy_document

    document = managed_policy_document(arn.rsplit("/", 1)[-1])
    if document is None:
        raise ConfigError(f"unknown AWS managed policy {arn}", field="ManagedPolicyArns",
                          hint="name a policy moto knows, or inline the statements")
    return document


def function_policies(transformed: dict[str, Any], resolve: Callable[[Any], Any]) -> dict[str, list[dict[str, Any]]]:
    """Function logical id -> the policy documents its role carries, intrinsics resolved."""
    resources = transformed["Resources"]
    out: dict[str, list[dict[str, Any]]] = {}
    for name, res in resources.items():
        if res.get("Type") != "AWS::Lambda::Function":
            continue
        role = resources[res["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        docs = [resolve(p["PolicyDocument"]) for p in role.get("Policies") or []]
        docs += [managed_policy(resolve(arn)) for arn in role.get("ManagedPolicyArns") or []]
        out[name] = [_drop_novalue(d) for d in docs]
    return out


def _drop_novalue(value: Any) -> Any:
    if isinstance(value, list):
        return [_drop_novalue(v) for v in value if v is not NOVALUE]
    if isinstance(value, dict):
        return {k: _drop_novalue(v) for k, v in value.items() if v is not NOVALUE}
    return value


NOVALUE = object()  # what ``Ref: AWS::NoValue`` resolves to: the key or list entry disappears


def _statements(docs: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for doc in docs:
        statements = doc.get("Statement") or []
        yield from (statements if isinstance(statements, list) else [statements])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allows(docs: Iterable[dict[str, Any]], action: str, resource: str | None = None) -> bool:
    """Whether the policies allow ``action`` (``service:Name``) on ``resource`` (an ARN; None: any).

    IAM's evaluation for identity policies: an explicit Deny wins, else an
    Allow must match both (``*`` and ``?`` wildcards; actions case-blind).
    """
    allowed = False
    for st in _statements(docs):
        actions = [a.lower() for a in _as_list(st.get("Action") or [])]
        if not any(fnmatch.fnmatchcase(action.lower(), a) for a in actions):
            continue
        targets = [str(r) for r in _as_list(st.get("Resource") or ["*"])]
        if resource is not None and not any(fnmatch.fnmatchcase(resource, r) for r in targets):
            continue
        if st.get("Effect") == "Deny":
            return False
        if st.get("Effect") == "Allow":
            allowed = True
    return allowed
