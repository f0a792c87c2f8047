"""Waiting for something another process or thread does: poll, and fail (never hang) after a bound."""
from __future__ import annotations

import time
from typing import Any, Callable


def wait_for(predicate: Callable[[], Any], *, timeout: float = 60.0, every: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy and return that; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")
