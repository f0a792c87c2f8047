"""The sliding-window counter shared by every backend, and the decision it produces.

Time is cut into windows of ``W`` seconds. A key's count at time ``t`` is
``previous * (1 - elapsed / W) + current``: the previous window's count,
weighted by how much of it still overlaps the last ``W`` seconds, plus the
current window's. A request passes when that count plus one stays within
the limit; only passing requests are counted. This needs two integers per
key and window, so every backend (a dict, a Redis Lua script, an atomic
store counter) can decide atomically, and all of them decide the same way:
on a quiet key, exactly ``limit`` requests pass in a window however many
arrive at once.

The caller passes ``now``: the backends never read a clock of their own,
which keeps them consistent with each other and lets tests drive time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the current window ends
    retry_after: int | None  # seconds to wait, when refused
    window: int

    def headers(self) -> dict[str, str]:
        """IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers), plus Retry-After on refusal."""
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": f"{self.limit};w={self.window}",
        }
        if not self.allowed and self.retry_after is not None:
            out["Retry-After"] = str(self.retry_after)
        return out


def slot(now: float, window: int) -> tuple[int, float]:
    """(window index, weight of the previous window)."""
    index = int(now // window)
    elapsed = now - index * window
    return index, 1.0 - elapsed / window


def passes(prev: int, curr: int, weight: float, limit: int) -> bool:
    """Would one more request stay within the limit? (the Lua script repeats this line)"""
    return prev * weight + curr + 1 <= limit


def decide(allowed: bool, prev: int, curr: int, now: float, limit: int, window: int) -> Decision:
    """Build the decision from the counts after the request (``curr`` includes it when allowed)."""
    index, weight = slot(now, window)
    elapsed = now - index * window
    reset = max(1, math.ceil(window - elapsed))
    used = prev * weight + curr
    remaining = max(0, math.floor(limit - used))
    retry = None
    if not allowed:
        if curr + 1 > limit:
            # only the next window can help: wait for it, then until this window's weight has decayed enough
            wait_next = window * (1 - (limit - 1) / curr) if curr > 0 else 0.0
            retry = (window - elapsed) + max(0.0, wait_next)
        else:
            retry = window * (1 - (limit - 1 - curr) / prev) - elapsed if prev > 0 else 0.0
        retry = max(1, math.ceil(retry))
    return Decision(allowed, limit, remaining, reset, retry, window)
