"""A real DynamoDB wire endpoint on 127.0.0.1 for tests and benchmarks: moto's server mode.

``local_dynamodb()`` is the product's launcher
(``flowmason.functions.moto_server``, the one ``fm serve --aws-local``
uses), so the suite tests against exactly what users run; it yields
``http://127.0.0.1:PORT``. ``dynamodb_url(endpoint)`` names a fresh table
on it and an S3 bucket for its large values (moto serves S3 on the same
port), both created on first open; ``blobs=False`` leaves the bucket out.
"""
from __future__ import annotations

import uuid

from flowmason.functions.moto_server import moto_server as local_dynamodb

__all__ = ["dynamodb_url", "local_dynamodb"]


def dynamodb_url(endpoint: str, table: str | None = None, *, blobs: bool = True) -> str:
    """URL of ``table`` (default: a fresh random name) on ``endpoint``, created when opened, with its blob bucket."""
    table = table or f"fm-test-{uuid.uuid4().hex[:12]}"
    url = f"dynamodb://{table}?endpoint_url={endpoint}&region=us-east-1&create=1"
    if blobs:
        url += f"&blob_bucket={table.lower()[:54]}-blobs"
    return url
