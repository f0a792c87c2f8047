"""The attack suite's bookkeeping and shared fixtures.

Every attack a test makes goes through ``attacks.attempt(category, name,
refused)``; the test then asserts it was refused. At the end of the run
the terminal summary prints how many attacks each category tried and how
many were refused (``FM_ATTACK_REPORT=path`` also writes them as JSON).
"""
from __future__ import annotations

import json
import os
import threading
from collections import defaultdict

import pytest

from tests.support.fixtures import moto_endpoint, redis_url  # noqa: F401 - fixtures


class Attacks:
    def __init__(self) -> None:
        self.tried: dict[str, int] = defaultdict(int)
        self.refused: dict[str, int] = defaultdict(int)
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def attempt(self, category: str, name: str, refused: bool) -> bool:
        with self._lock:
            self.tried[category] += 1
            if refused:
                self.refused[category] += 1
            else:
                self.failures.append(f"{category}: {name}")
        return refused

    def summary(self) -> dict:
        return {c: {"tried": self.tried[c], "refused": self.refused[c]} for c in sorted(self.tried)}


_ATTACKS = Attacks()


@pytest.fixture(scope="session")
def attacks() -> Attacks:
    return _ATTACKS


def pytest_terminal_summary(terminalreporter):
    if not _ATTACKS.tried:
        return
    summary = _ATTACKS.summary()
    total_t = sum(v["tried"] for v in summary.values())
    total_r = sum(v["refused"] for v in summary.values())
    terminalreporter.write_sep("=", f"security suite: {total_t} attacks tried, {total_r} refused")
    for category, counts in summary.items():
        terminalreporter.write_line(f"  {category:<28} tried {counts['tried']:>5}  refused {counts['refused']:>5}")
    for failure in _ATTACKS.failures:
        terminalreporter.write_line(f"  NOT REFUSED: {failure}")
    path = os.environ.get("FM_ATTACK_REPORT")
    if path:
        with open(path, "w") as fh:
            json.dump({"tried": total_t, "refused": total_r, "categories": summary,
                       "not_refused": _ATTACKS.failures}, fh, indent=2)


@pytest.fixture
def api(tmp_path):
    from tests.support.auth_api import auth_api

    with auth_api(f"sqlite:///{tmp_path / 'api.db'}") as client:
        yield client


