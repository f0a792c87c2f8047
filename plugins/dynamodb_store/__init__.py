"""The AWS storage backend: DynamoDB, registered as the ``dynamodb`` URL scheme.

URL: ``dynamodb://TABLE`` with optional query parameters ``region``,
``endpoint_url`` (a local endpoint such as moto's server or DynamoDB Local),
``create=1`` (create the table, with TTL on ``expires_at``, if missing) and
``attempts=N`` (tries per request, with adaptive backoff; default 10).
Credentials come from the usual AWS chain (environment, profile, role).

boto3 is imported inside the factory, never when this plugin is loaded, so
processes that do not use DynamoDB (the CLI on a laptop, edge devices) pay
nothing for it. The store is in ``store.py``.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from flowmason.kernel.errors import ConfigError
from flowmason.kernel.plugins import hookimpl


def open_dynamodb(url: str):
    """Open the DynamoDB store named by ``url`` (see the module docstring)."""
    parts = urlsplit(url)
    table = parts.netloc or parts.path.lstrip("/")
    if parts.scheme.lower() != "dynamodb" or not table:
        raise ConfigError(
            f"bad DynamoDB store URL {url!r}",
            field="store",
            hint="write dynamodb://TABLE?region=REGION (and endpoint_url=http://HOST:PORT for a local endpoint)",
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"region", "endpoint_url", "create", "attempts"}
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(sorted(unknown))} in store URL {url!r}",
            field="store",
            hint="known parameters: region, endpoint_url, create, attempts",
        )
    try:
        attempts = int(query.get("attempts", 10))
        if attempts < 1:
            raise ValueError
    except ValueError:
        raise ConfigError(f"bad attempts in store URL {url!r}", field="store", hint="attempts=N, N >= 1") from None
    try:
        from .store import DynamoStore, create_table, make_client
    except ImportError as exc:
        raise ConfigError(
            f"the DynamoDB store needs boto3 ({exc})", field="store", hint="pip install 'flowmason[aws]'"
        ) from exc
    client = make_client(region=query.get("region"), endpoint_url=query.get("endpoint_url"), attempts=attempts)
    if query.get("create", "0").lower() in ("1", "true", "yes"):
        create_table(client, table)
    return DynamoStore(table, client, url=url)


@hookimpl
def fm_register_storage_backends(register):
    register("dynamodb", open_dynamodb)
