"""Fixtures opening every rate-limit backend against real servers.

``limiter_factory(name)`` builds a limiter for ``memory``, ``redis`` (a
real redis-server started once per session on a free 127.0.0.1 port;
skipped only when the binary is absent), ``dynamodb`` (moto's server
mode, a real DynamoDB wire endpoint), ``sqlite`` (the store limiter on a
file) and ``hybrid`` (Redis, with memory as fallback).
"""
from __future__ import annotations

import uuid

import pytest

from tests.support.fixtures import moto_endpoint, redis_url  # noqa: F401 - fixtures


@pytest.fixture
def limiter_factory(request, tmp_path):
    from flowmason.kernel.storage import open_store
    from flowmason.plugins.ratelimit import HybridLimiter, MemoryLimiter, RedisLimiter, StoreLimiter

    made = []

    def make(name: str, limit: int, window: int):
        if name == "memory":
            lim = MemoryLimiter(limit, window)
        elif name in ("redis", "hybrid"):
            url = request.getfixturevalue("redis_url")
            # a fresh key prefix per limiter so tests never see each other's counters
            red = RedisLimiter(limit, window, url=url, prefix=f"t{uuid.uuid4().hex[:8]}:")
            lim = red if name == "redis" else HybridLimiter(limit, window, redis=red)
        elif name == "dynamodb":
            from tests.support.dynamodb import dynamodb_url

            lim = StoreLimiter(limit, window, store=open_store(dynamodb_url(request.getfixturevalue("moto_endpoint"))))
        elif name == "sqlite":
            lim = StoreLimiter(limit, window, store=open_store(f"sqlite:///{tmp_path / f'rl{len(made)}.db'}"))
        else:
            raise ValueError(name)
        made.append(lim)
        return lim

    yield make
    for lim in made:
        lim.close()
