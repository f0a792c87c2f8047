"""Rate-limit backends: memory, Redis (atomic Lua), a store (DynamoDB's atomic counters), and hybrid.

All share ``window.py``'s rule and differ only in where the two counters
per key live and how the read-decide-increment step is made atomic:

- ``MemoryLimiter``: a dict under a lock; one process only.
- ``RedisLimiter``: one Lua script (``sliding_window.lua``) runs the whole
  step inside Redis, so any number of API processes share one limit.
- ``StoreLimiter``: ``Store.increment`` (an atomic counter with expiry;
  on DynamoDB an ``UpdateItem``) of the window's attempts first, then the
  decision on the value it returned. Each increment returns a distinct
  value, so under any concurrency exactly the first ``limit`` values pass.
  Passing requests also bump a second counter, the one the next window
  reads as "previous". Only +1 updates: giving a refused attempt back
  (-1) would race with other writers' reads of the counter, and refused
  attempts counting in their own window is the safe side of the rule (a
  flood keeps its sender waiting until the window ends).
- ``HybridLimiter``: Redis while it answers; when it does not, memory,
  retrying Redis after ``retry_every`` seconds (limits become per process
  during the outage instead of failing open or closed).
"""
from __future__ import annotations

import threading
import time
from importlib import resources
from typing import Any

from .window import Decision, decide, passes, slot


class Limiter:
    """Base: ``hit(key, now=None) -> Decision`` counts one request for ``key``.

    ``clock`` (default ``time.time``) is where ``now`` comes from when not
    given: tests and benchmarks drive windows with it.
    """

    name = "base"
    clock = staticmethod(time.time)

    def __init__(self, limit: int, window: int) -> None:
        if limit < 1 or window < 1:
            raise ValueError("limit and window must be at least 1")
        self.limit, self.window = limit, window

    def hit(self, key: str, now: float | None = None) -> Decision:
        now = self.clock() if now is None else now
        allowed, prev, curr = self._step(key, now)
        return decide(allowed, prev, curr, now, self.limit, self.window)

    def _step(self, key: str, now: float) -> tuple[bool, int, int]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class MemoryLimiter(Limiter):
    name = "memory"

    def __init__(self, limit: int, window: int, *, max_keys: int = 100_000) -> None:
        super().__init__(limit, window)
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self.max_keys = max_keys

    def _step(self, key: str, now: float) -> tuple[bool, int, int]:
        index, weight = slot(now, self.window)
        with self._lock:
            if len(self._counts) > self.max_keys:
                # forget windows that can no longer matter (older than the previous one)
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= index - 1}
            prev = self._counts.get((key, index - 1), 0)
            curr = self._counts.get((key, index), 0)
            if passes(prev, curr, weight, self.limit):
                curr += 1
                self._counts[(key, index)] = curr
                return True, prev, curr
            return False, prev, curr


class RedisLimiter(Limiter):
    name = "redis"

    def __init__(self, limit: int, window: int, *, url: str = "redis://127.0.0.1:6379/0", client: Any = None,
                 prefix: str = "fm:rl:", timeout: float = 0.5) -> None:
        super().__init__(limit, window)
        if client is None:
            import redis

            client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.client = client
        self.prefix = prefix
        source = resources.files(__package__).joinpath("sliding_window.lua").read_text("utf-8")
        self._script = client.register_script(source)

    def _step(self, key: str, now: float) -> tuple[bool, int, int]:
        index, weight = slot(now, self.window)
        # the {hash tag} keeps both windows of a key in one Redis Cluster slot (a script may only touch one)
        base = f"{self.prefix}{{{key}}}:"
        allowed, prev, curr = self._script(
            keys=[f"{base}{index}", f"{base}{index - 1}"],
            args=[self.limit, repr(weight), self.window * 2000],
        )
        return bool(allowed), int(prev), int(curr)

    def close(self) -> None:
        self.client.close()


class StoreLimiter(Limiter):
    """Counters on the storage contract: ``pk = "rl#{key}"``, ``sk = window index``."""

    name = "store"

    def __init__(self, limit: int, window: int, *, store: Any = None, url: str | None = None) -> None:
        super().__init__(limit, window)
        if store is None:
            from flowmason.kernel.storage import open_store

            store = open_store(url)
        self.store = store

    def _step(self, key: str, now: float) -> tuple[bool, int, int]:
        index, weight = slot(now, self.window)
        pk = f"rl#{key}"
        prev_item = self.store.get(pk, f"{index - 1:012d}#ok")
        prev = int(prev_item.data.get("n", 0)) if prev_item else 0
        # expiry on the real clock (items expire in real time), long enough to serve as "previous"
        expires_at = time.time() + 2 * self.window
        attempt = self.store.increment(pk, f"{index:012d}", "n", 1, expires_at=expires_at)
        if prev * weight + attempt <= self.limit:
            self.store.increment(pk, f"{index:012d}#ok", "n", 1, expires_at=expires_at)
            return True, prev, attempt
        return False, prev, min(attempt - 1, self.limit)  # roughly what passed: the headers' basis

    def close(self) -> None:
        self.store.close()


class HybridLimiter(Limiter):
    name = "hybrid"

    def __init__(self, limit: int, window: int, *, redis: RedisLimiter | None = None, url: str | None = None,
                 retry_every: float = 5.0) -> None:
        super().__init__(limit, window)
        self.memory = MemoryLimiter(limit, window)
        self.redis = redis or RedisLimiter(limit, window, url=url or "redis://127.0.0.1:6379/0")
        self.retry_every = retry_every
        self._down_until = 0.0
        self.fallbacks = 0  # how many decisions memory made (observability, tests)

    def _step(self, key: str, now: float) -> tuple[bool, int, int]:
        import redis as redis_lib

        if time.monotonic() >= self._down_until:
            try:
                return self.redis._step(key, now)
            except (redis_lib.ConnectionError, redis_lib.TimeoutError, OSError):
                self._down_until = time.monotonic() + self.retry_every
        self.fallbacks += 1
        return self.memory._step(key, now)

    @property
    def using(self) -> str:
        return "memory" if time.monotonic() < self._down_until else "redis"

    def close(self) -> None:
        self.redis.close()
