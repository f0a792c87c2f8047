"""DynamoDB-only behaviour: table creation and TTL, URLs, error translation, lazy boto3.

Against moto's HTTP server on 127.0.0.1; the contract itself is in tests/conformance/.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import uuid

import pytest

pytest.importorskip("boto3")

from botocore.exceptions import ClientError  # noqa: E402

from flowmason.kernel.errors import ConfigError, ItemTooLargeError, StorageError, StoreUnavailableError  # noqa: E402
from flowmason.kernel.storage import open_store  # noqa: E402
from flowmason.plugins.dynamodb_store import open_dynamodb  # noqa: E402
from flowmason.plugins.dynamodb_store.store import _error, create_table, make_client  # noqa: E402


@pytest.fixture(scope="module")
def endpoint():
    pytest.importorskip("moto")
    from tests.support.dynamodb import local_dynamodb

    with local_dynamodb() as url:
        yield url


def test_create_table_turns_on_ttl_and_is_idempotent(endpoint):
    client = make_client(endpoint_url=endpoint)
    table = f"fm-{uuid.uuid4().hex[:8]}"
    assert create_table(client, table) is True
    assert create_table(client, table) is False
    ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "expires_at"
    keys = {k["AttributeName"]: k["KeyType"] for k in client.describe_table(TableName=table)["Table"]["KeySchema"]}
    assert keys == {"pk": "HASH", "sk": "RANGE"}


def test_missing_table_says_how_to_create_it(endpoint):
    store = open_store(f"dynamodb://no-such-table?endpoint_url={endpoint}")
    with pytest.raises(StoreUnavailableError, match="does not exist") as info:
        store.get("p", "s")
    assert "create=1" in str(info.value)


def test_unreachable_endpoint_is_a_clear_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = open_store(f"dynamodb://t?endpoint_url=http://127.0.0.1:{port}&attempts=1")
    with pytest.raises(StoreUnavailableError, match="cannot reach DynamoDB"):
        store.put("p", "s", {})


def test_wrong_key_schema_is_refused_by_migrate(endpoint):
    client = make_client(endpoint_url=endpoint)
    table = f"fm-{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    store = open_store(f"dynamodb://{table}?endpoint_url={endpoint}")
    with pytest.raises(StoreUnavailableError, match="not pk"):
        store.migrate()


def test_retries_back_off_adaptively():
    client = make_client(endpoint_url="http://127.0.0.1:9")
    assert client.meta.config.retries == {"total_max_attempts": 10, "mode": "adaptive"}
    assert make_client(endpoint_url="http://127.0.0.1:9") is client  # shared: the model loads once


@pytest.mark.parametrize(
    "code, kind, text",
    [
        ("ProvisionedThroughputExceededException", StoreUnavailableError, "on-demand"),
        ("ThrottlingException", StoreUnavailableError, "throttling"),
        ("AccessDeniedException", StoreUnavailableError, "credentials"),
        ("ValidationException", ItemTooLargeError, "size"),
    ],
)
def test_service_errors_are_translated(code, kind, text):
    message = "Item size has exceeded the maximum allowed size" if code == "ValidationException" else "slow down"
    exc = ClientError({"Error": {"Code": code, "Message": message}}, "PutItem")
    err = _error(exc, "tbl")
    assert type(err) is kind and text in str(err) and "tbl" in str(err)


@pytest.mark.parametrize(
    "url, text",
    [
        ("dynamodb://", "bad DynamoDB store URL"),
        ("dynamodb://t?colour=red", r"unknown parameter\(s\) colour"),
        ("dynamodb://t?attempts=0", "bad attempts"),
    ],
)
def test_bad_urls(url, text):
    with pytest.raises(ConfigError, match=text):
        open_dynamodb(url)


def test_floats_that_dynamodb_cannot_hold_are_refused(endpoint):
    from flowmason.plugins.dynamodb_store.store import to_attr

    with pytest.raises(StorageError, match="cannot store"):
        to_attr(float("nan"))


def test_loading_the_plugins_does_not_import_boto3():
    code = (
        "import sys; from flowmason.kernel.plugins import get_registry; reg = get_registry(); "
        "assert 'dynamodb' in reg.storage_backends and 'sqlite' in reg.storage_backends; "
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'cloud SDK imported'; "
        "assert 'sqlite3' not in sys.modules, 'sqlite3 imported before first open'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
