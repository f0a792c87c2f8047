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

from typing import Any

from flowmason.kernel.plugins import hookimpl

_HOME = {"Decision": "window", "HybridLimiter": "backends", "Limiter": "backends", "MemoryLimiter": "backends",
         "RedisLimiter": "backends", "StoreLimiter": "backends", "RateLimitSettings": "policy",
         "RequestLimiter": "policy", "build_limiter": "policy", "key_for": "policy"}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    # loaded on first use: every `fm` start registers this plugin, few use it
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(name)


@hookimpl
def fm_register_rate_limiters(register):
    from .policy import RateLimitSettings, RequestLimiter, build_limiter

    settings = RateLimitSettings.from_env()
    if settings.enabled:
        register("flowmason", lambda **options: RequestLimiter(build_limiter(settings, **options)))
