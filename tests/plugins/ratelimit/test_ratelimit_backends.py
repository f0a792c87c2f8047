"""Every backend decides the same way: the sliding-window rule, exact under concurrency."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest


from flowmason.plugins.ratelimit.window import decide, slot

ALL = ["memory", "redis", "dynamodb", "sqlite", "hybrid"]
T0 = 1_700_000_040.0  # the start of a 60-second window (1_700_000_040 is a multiple of 60)


@pytest.mark.parametrize("backend", ALL)
def test_limit_then_refuse_with_headers(limiter_factory, backend):
    lim = limiter_factory(backend, 5, 60)
    decisions = [lim.hit("user:a", now=T0 + 1) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    refused = decisions[-1].headers()
    assert refused["RateLimit-Limit"] == "5" and refused["RateLimit-Remaining"] == "0"
    assert refused["RateLimit-Policy"] == "5;w=60"
    assert refused["RateLimit-Reset"] == "59"
    # nothing left in this window: wait for the next one (59 s) and until 5 hits weigh < 4 (12 s more)
    assert refused["Retry-After"] == "71"
    assert "Retry-After" not in decisions[0].headers()


@pytest.mark.parametrize("backend", ALL)
def test_keys_are_independent(limiter_factory, backend):
    lim = limiter_factory(backend, 2, 60)
    assert [lim.hit("ip:1", now=T0).allowed for _ in range(3)] == [True, True, False]
    assert lim.hit("ip:2", now=T0).allowed
    assert lim.hit("key:abc", now=T0).allowed


@pytest.mark.parametrize("backend", ALL)
def test_window_slides(limiter_factory, backend):
    lim = limiter_factory(backend, 10, 60)
    assert sum(lim.hit("u", now=T0 + 30).allowed for _ in range(15)) == 10
    # halfway through the next window the previous 10 weigh 5: five more pass
    assert sum(lim.hit("u", now=T0 + 90).allowed for _ in range(15)) == 5
    # two windows later the history is gone
    assert sum(lim.hit("u", now=T0 + 240).allowed for _ in range(15)) == 10


@pytest.mark.parametrize("backend", ALL)
def test_exactly_limit_pass_under_1000_concurrent_requests(limiter_factory, backend):
    lim = limiter_factory(backend, 100, 60)
    for window_start in (T0, T0 + 180):  # two windows with no overlap between them
        with ThreadPoolExecutor(max_workers=32) as pool:
            results = list(pool.map(lambda _: lim.hit("key:hot", now=window_start + 5).allowed, range(1000)))
        assert sum(results) == 100, backend


def test_decide_retry_after_uses_previous_window_weight():
    # 10 allowed in the previous window, 0 now, halfway: weight .5 -> count 5; limit 5 -> refused
    d = decide(False, 10, 0, T0 + 30, 5, 60)
    # count falls to 4 when the weight reaches .4, i.e. 36 s into the window: 6 s from now
    assert d.retry_after == 6
    assert slot(T0 + 30, 60) == (int(T0 // 60), 0.5)


def test_hybrid_falls_back_to_memory_when_redis_is_down(limiter_factory):
    from flowmason.plugins.ratelimit import HybridLimiter, RedisLimiter
    from tests.support.net import free_port

    dead = RedisLimiter(3, 60, url=f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    lim = HybridLimiter(3, 60, redis=dead, retry_every=60)
    assert [lim.hit("u", now=T0).allowed for _ in range(4)] == [True, True, True, False]
    assert lim.using == "memory" and lim.fallbacks == 4


def test_hybrid_uses_redis_when_reachable(limiter_factory):
    lim = limiter_factory("hybrid", 3, 60)
    assert [lim.hit("u", now=T0).allowed for _ in range(4)] == [True, True, True, False]
    assert lim.using == "redis" and lim.fallbacks == 0
    # the counts are in Redis: a second limiter on the same prefix sees them
    from flowmason.plugins.ratelimit import RedisLimiter

    twin = RedisLimiter(3, 60, client=lim.redis.client, prefix=lim.redis.prefix)
    assert not twin.hit("u", now=T0).allowed


def test_settings_from_env_and_errors():
    from flowmason.kernel.errors import ConfigError
    from flowmason.plugins.ratelimit import RateLimitSettings

    assert not RateLimitSettings.from_env({}).enabled
    s = RateLimitSettings.from_env({"FM_RATELIMIT": "100/60", "FM_RATELIMIT_BACKEND": "redis"})
    assert (s.enabled, s.limit, s.window, s.backend) == (True, 100, 60, "redis")
    with pytest.raises(ConfigError, match="LIMIT/SECONDS"):
        RateLimitSettings.from_env({"FM_RATELIMIT": "lots"})
    with pytest.raises(ConfigError, match="backend"):
        RateLimitSettings.from_env({"FM_RATELIMIT": "5/1", "FM_RATELIMIT_BACKEND": "memcached"})


def test_key_for_prefers_api_key_then_user_then_ip():
    from types import SimpleNamespace

    from flowmason.plugins.ratelimit import key_for

    req = SimpleNamespace(client=SimpleNamespace(host="10.0.0.7"))
    assert key_for(req, {"kind": "api_key", "key_prefix": "abcd1234", "subject": "u1"}) == "key:abcd1234"
    assert key_for(req, {"kind": "session", "subject": "u1"}) == "user:u1"
    assert key_for(req, None) == "ip:10.0.0.7"
