"""Provider keys from Secrets Manager or SSM at the worker's cold start, with the role template.yaml gives it (moto, IAM on)."""
from __future__ import annotations

import importlib
import json
import os

import pytest

from flowmason.kernel.errors import ConfigError

KEYS = {"ANTHROPIC_API_KEY": "sk-test-anthropic", "OPENAI_API_KEY": "sk-test-openai"}


@pytest.fixture
def clean_keys(monkeypatch):
    for name in KEYS:
        monkeypatch.setenv(name, "")  # remembered as absent: what the test loads is undone afterwards
        monkeypatch.delenv(name)


def _as_worker(stack, monkeypatch):
    creds = stack.credentials["WorkerFunction"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["aws_secret_access_key"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds["aws_session_token"])


def test_the_worker_reads_its_keys_from_secrets_manager_when_it_starts(make_stack, monkeypatch, clean_keys):
    stack = make_stack(run_worker=False, iam=True, parameters={"ProviderKeysSecretName": "fm-provider-keys"})
    stack.client("secretsmanager").create_secret(Name="fm-provider-keys", SecretString=json.dumps(KEYS))
    assert stack._function_env("WorkerFunction")["FM_PROVIDER_KEYS"] == "secretsmanager:fm-provider-keys"
    monkeypatch.setenv("FM_PROVIDER_KEYS", "secretsmanager:fm-provider-keys")
    _as_worker(stack, monkeypatch)
    import flowmason.functions.worker as worker

    importlib.reload(worker)  # Lambda's init: the module's import reads them
    assert {k: os.environ.get(k) for k in KEYS} == KEYS


def test_an_ssm_parameter_works_the_same_and_another_secret_is_refused(make_stack, monkeypatch, clean_keys, aws_calls):
    from flowmason.functions import provider_keys

    stack = make_stack(run_worker=False, iam=True, parameters={"ProviderKeysParameterName": "/flowmason/keys"})
    stack.client("ssm").put_parameter(Name="/flowmason/keys", Type="SecureString", Value=json.dumps(KEYS))
    stack.client("ssm").put_parameter(Name="/other/keys", Type="SecureString", Value=json.dumps(KEYS))
    assert stack._function_env("WorkerFunction")["FM_PROVIDER_KEYS"] == "ssm:/flowmason/keys"
    session = stack.session("WorkerFunction")
    assert provider_keys.load("ssm:/flowmason/keys", session=session) == sorted(KEYS)
    assert os.environ["OPENAI_API_KEY"] == KEYS["OPENAI_API_KEY"]
    # without a secret parameter the role has no Secrets Manager grant: a clear error, not a traceback
    with pytest.raises(ConfigError, match="cannot read the provider keys from secretsmanager:nope") as err:
        provider_keys.load("secretsmanager:nope", session=session)
    assert "role may read it" in (err.value.hint or "")
    aws_calls.expected.add("WorkerFunction: secretsmanager:GetSecretValue")  # refused on purpose


def test_keys_that_are_not_an_object_of_names_are_refused(make_stack, clean_keys):
    from flowmason.functions import provider_keys

    stack = make_stack(run_worker=False)
    for n, bad in enumerate(["not json", json.dumps(["a"]), json.dumps({"FM_AUTH": "0"}), json.dumps({"A": 1})]):
        stack.client("secretsmanager").create_secret(Name=f"bad-{n}", SecretString=bad)
        with pytest.raises(ConfigError, match="not a JSON object"):
            provider_keys.read(f"secretsmanager:bad-{n}", session=stack.session())
    with pytest.raises(ConfigError, match="names no secret"):
        provider_keys.read("vault:x", session=stack.session())
