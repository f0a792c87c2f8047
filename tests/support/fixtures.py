"""pytest fixtures for the real servers suites talk to; conftests import them by name.

``redis_url``: a real redis-server for the session (skipped only when the
binary is absent). ``moto_endpoint``: moto's DynamoDB server mode for the
session. The one module of ``tests.support`` that imports pytest.
"""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def redis_url():
    from .redis_server import local_redis, redis_binary

    if redis_binary() is None:
        pytest.skip("redis-server binary not installed")
    with local_redis() as url:
        yield url


@pytest.fixture(scope="session")
def moto_endpoint():
    pytest.importorskip("moto")
    from .dynamodb import local_dynamodb

    with local_dynamodb() as endpoint:
        yield endpoint
