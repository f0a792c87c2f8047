"""From settings and requests to decisions: which backend, which key, which response.

``RequestLimiter.check(request, identity)`` is what the HTTP API calls
after authentication and before a route runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from flowmason.kernel.errors import ConfigError
from flowmason.kernel.settings import Settings, get_settings

from .backends import HybridLimiter, Limiter, MemoryLimiter, RedisLimiter, StoreLimiter
from .window import Decision

BACKENDS = ("memory", "redis", "dynamodb", "store", "hybrid")


@dataclass(frozen=True)
class RateLimitSettings:
    enabled: bool = False
    limit: int = 100
    window: int = 60
    backend: str = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    store_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "RateLimitSettings":
        """From the process settings (kernel/settings.py), or from ``env`` when a test gives one."""
        s = get_settings() if env is None else Settings.from_env(env)
        spec = (s.ratelimit or "").strip()
        backend = s.ratelimit_backend.strip().lower()
        if backend not in BACKENDS:
            raise ConfigError(f"unknown rate-limit backend {backend!r}", field="FM_RATELIMIT_BACKEND",
                              hint=f"use one of {', '.join(BACKENDS)}")
        base = cls(backend=backend, redis_url=s.ratelimit_redis, store_url=s.ratelimit_store)
        if not spec or spec.lower() in ("0", "off", "false", "no"):
            return base
        try:
            limit_s, _, window_s = spec.partition("/")
            limit, window = int(limit_s), int(window_s or 60)
            if limit < 1 or window < 1:
                raise ValueError
        except ValueError:
            raise ConfigError(f"FM_RATELIMIT={spec!r} is not LIMIT/SECONDS", field="FM_RATELIMIT",
                              hint="e.g. FM_RATELIMIT=100/60 (100 requests a minute)") from None
        return cls(True, limit, window, backend, base.redis_url, base.store_url)


def build_limiter(settings: RateLimitSettings, **options: Any) -> Limiter:
    """The backend the settings name; ``options`` go to its constructor (``store=``, ``client=``...)."""
    limit, window, b = settings.limit, settings.window, settings.backend
    if b == "memory":
        return MemoryLimiter(limit, window, **options)
    if b == "redis":
        return RedisLimiter(limit, window, url=settings.redis_url, **options)
    if b in ("dynamodb", "store"):
        return StoreLimiter(limit, window, url=settings.store_url, **options)
    return HybridLimiter(limit, window, url=settings.redis_url, **options)


def key_for(request: Any, identity: dict | None) -> str:
    """API key, else user, else client IP."""
    if identity:
        if identity.get("kind") == "api_key" and identity.get("key_prefix"):
            return f"key:{identity['key_prefix']}"
        if identity.get("subject"):
            return f"user:{identity['subject']}"
    client = getattr(request, "client", None)
    return f"ip:{client.host if client else 'unknown'}"


class RequestLimiter:
    """Applies one limiter to the HTTP API's requests (its ``check`` contract, ``plugins/http_api``).

    ``check`` returns ``{"allowed", "retry_after", "headers"}``; the API adds
    the headers to the response and turns a refusal into 429. Backends that
    do network I/O (Redis, DynamoDB, a store file) run in the thread pool so
    the event loop never waits on them.
    """

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        self._inline = isinstance(limiter, MemoryLimiter)

    def decide(self, request: Any, identity: dict | None = None) -> Decision:
        return self.limiter.hit(key_for(request, identity))

    async def check(self, request: Any, identity: dict | None = None) -> dict[str, Any]:
        if self._inline:
            decision = self.decide(request, identity)
        else:
            from starlette.concurrency import run_in_threadpool

            decision = await run_in_threadpool(self.decide, request, identity)
        return {"allowed": decision.allowed, "retry_after": decision.retry_after, "headers": decision.headers()}

    def close(self) -> None:
        self.limiter.close()
