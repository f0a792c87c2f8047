"""The AWS storage backend: DynamoDB, registered as the ``dynamodb`` URL scheme.

URL: ``dynamodb://TABLE`` with optional query parameters ``region``,
``endpoint_url`` (a local endpoint such as moto's server or DynamoDB Local),
``create=1`` (create the table, with TTL on ``expires_at``, if missing) and
``attempts=N`` (tries per request, with adaptive backoff; default 10) and
``blob_bucket`` (the S3 bucket for values over the item limit, default
``FM_BLOB_BUCKET``; ``create=1`` creates it too; see ``blobs.py``; without
one a value over 400 KB fails its stage with a clear error).
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
    unknown = set(query) - {"region", "endpoint_url", "create", "attempts", "blob_bucket"}
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(sorted(unknown))} in store URL {url!r}",
            field="store",
            hint="known parameters: region, endpoint_url, create, attempts, blob_bucket",
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
    create = query.get("create", "0").lower() in ("1", "true", "yes")
    if create:
        create_table(client, table)
    store = DynamoStore(table, client, url=url)
    from flowmason.kernel.settings import get_settings

    bucket = query.get("blob_bucket") or get_settings().blob_bucket
    if bucket:
        from .blobs import S3Blobs, make_s3_client

        s3 = make_s3_client(region=client.meta.region_name, endpoint_url=query.get("endpoint_url"), attempts=attempts)
        blobs = S3Blobs(bucket, s3)
        if create:
            blobs.create_bucket()
        store.blobs = blobs
    return store


@hookimpl
def fm_register_storage_backends(register):
    register("dynamodb", open_dynamodb)
