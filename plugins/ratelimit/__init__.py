"""Rate limiting for the HTTP API: a sliding window per API key, user or IP.

Off unless ``FM_RATELIMIT`` is set (``LIMIT/SECONDS``, e.g. ``100/60``), so
the laptop CLI is never limited. Settings:

======================  ==============================================  ==========
variable                meaning                                         default
======================  ==============================================  ==========
FM_RATELIMIT            ``LIMIT/SECONDS`` per key                       off
FM_RATELIMIT_BACKEND    ``memory``, ``redis``, ``dynamodb``, ``hybrid``  memory
FM_RATELIMIT_REDIS      Redis URL (redis, hybrid)                       redis://127.0.0.1:6379/0
FM_RATELIMIT_STORE      store URL (dynamodb; any store URL works)       FM_STORE
======================  ==============================================  ==========

The key of a request is ``key:<prefix>`` for an API key, ``user:<id>`` for
a logged-in user, else ``ip:<client address>``. Refused requests get
``429`` with ``Retry-After``; every limited response carries the
``RateLimit-Limit/Remaining/Reset/Policy`` headers.
"""
from __future__ import annotations

from flowmason.kernel.plugins import hookimpl

from .backends import HybridLimiter, Limiter, MemoryLimiter, RedisLimiter, StoreLimiter
from .policy import RateLimitSettings, RequestLimiter, build_limiter, key_for
from .window import Decision

__all__ = ["Decision", "HybridLimiter", "Limiter", "MemoryLimiter", "RateLimitSettings", "RedisLimiter",
           "RequestLimiter", "StoreLimiter", "build_limiter", "key_for"]


@hookimpl
def fm_register_rate_limiters(register):
    settings = RateLimitSettings.from_env()
    if settings.enabled:
        register("flowmason", lambda **options: RequestLimiter(build_limiter(settings, **options)))
