"""Fixtures that open every storage backend for the conformance suite.

``store`` is parametrized over the backends: SQLite in a fresh file per
test, DynamoDB in a fresh table per test on moto's server mode, a real
HTTP endpoint on 127.0.0.1 started once per session (``moto_endpoint``),
so requests go through botocore's full wire path, never an in-process stub.
``store_url`` gives the URL instead, for tests that open the store in
other threads or processes.
"""
from __future__ import annotations

import pytest

from flowmason.kernel.storage import open_store

BACKENDS = ["sqlite", "dynamodb"]


@pytest.fixture(scope="session")
def moto_endpoint():
    pytest.importorskip("moto")
    from tests.support.dynamodb import local_dynamodb

    with local_dynamodb() as endpoint:
        yield endpoint


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'store.db'}"
    from tests.support.dynamodb import dynamodb_url

    return dynamodb_url(request.getfixturevalue("moto_endpoint"))


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()
