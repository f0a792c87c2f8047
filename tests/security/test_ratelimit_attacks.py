"""1,000 concurrent requests against a limit of 100, through the HTTP API, with every backend.

The limiter's clock is pinned inside one window, then moved three windows
on: in each window exactly 100 requests pass and 900 get 429 with
Retry-After and RateLimit-* headers.
"""
from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from flowmason.kernel.plugins import hookimpl
from tests.support.auth_api import auth_api, register
from flowmason.plugins.ratelimit import HybridLimiter, MemoryLimiter, RedisLimiter, RequestLimiter, StoreLimiter

LIMIT, WINDOW = 100, 60
T0 = 1_800_000_000.0 - (1_800_000_000.0 % WINDOW) + 5


class PinnedLimiter:
    """A plugin that registers one limiter whose clock the test sets."""

    def __init__(self, limiter) -> None:
        self.limiter = limiter
        self.now = T0
        limiter.clock = lambda: self.now

    @hookimpl
    def fm_register_rate_limiters(self, register):
        register("pinned", RequestLimiter(self.limiter))


def _limiter(backend, request, tmp_path):
    from flowmason.kernel.storage import open_store

    if backend == "memory":
        return MemoryLimiter(LIMIT, WINDOW)
    if backend in ("redis", "hybrid"):
        red = RedisLimiter(LIMIT, WINDOW, url=request.getfixturevalue("redis_url"), prefix=f"s{uuid.uuid4().hex[:6]}:")
        return red if backend == "redis" else HybridLimiter(LIMIT, WINDOW, redis=red)
    if backend == "dynamodb":
        from tests.support.dynamodb import dynamodb_url

        return StoreLimiter(LIMIT, WINDOW, store=open_store(dynamodb_url(request.getfixturevalue("moto_endpoint"))))
    return StoreLimiter(LIMIT, WINDOW, store=open_store(f"sqlite:///{tmp_path / 'rl.db'}"))


async def _burst(app, headers, n):
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", limits=limits) as c:
        return await asyncio.gather(*(c.get("/runs", headers=headers) for _ in range(n)))


@pytest.mark.parametrize("backend", ["memory", "redis", "dynamodb", "sqlite", "hybrid"])
def test_exactly_the_limit_passes_per_window(backend, request, tmp_path, attacks):
    plugin = PinnedLimiter(_limiter(backend, request, tmp_path))
    with auth_api(f"sqlite:///{tmp_path / 'api.db'}", extra_plugins=[plugin]) as api:
        user = register(api, f"burst-{backend}@example.com")
        for window in range(2):
            plugin.now = T0 + window * 3 * WINDOW
            responses = asyncio.run(_burst(api.app, user.headers, 1000))
            codes = [r.status_code for r in responses]
            assert codes.count(200) == LIMIT, (backend, window, {c: codes.count(c) for c in set(codes)})
            assert codes.count(429) == 1000 - LIMIT
            for r in responses:
                if r.status_code == 429:
                    attacks.attempt("rate limit", f"{backend}: request over the limit", True)
                    assert int(r.headers["Retry-After"]) >= 1
                    assert r.headers["RateLimit-Remaining"] == "0" and r.headers["RateLimit-Limit"] == str(LIMIT)
                else:
                    assert r.headers["RateLimit-Policy"] == f"{LIMIT};w={WINDOW}"
        plugin.limiter.close()


def test_env_switch_turns_the_limiter_on(tmp_path):
    with auth_api(f"sqlite:///{tmp_path / 'api.db'}", ratelimit={"FM_RATELIMIT": "3/60"}) as api:
        user = register(api, "env@example.com")
        codes = [api.get("/runs", headers=user.headers).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        # anonymous callers are limited per IP, separately from that user
        assert api.get("/health").status_code == 200
