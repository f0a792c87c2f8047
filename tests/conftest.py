"""Shared fixtures: an isolated data folder and store per test, and a fresh plugin manager."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    # never touch the developer's real ~/.local/share/flowmason
    monkeypatch.setenv("FM_HOME", str(tmp_path / "fmhome"))
    monkeypatch.delenv("FM_STORE", raising=False)
    monkeypatch.delenv("FM_PLUGINS", raising=False)
    monkeypatch.delenv("FM_RECORD", raising=False)
    monkeypatch.delenv("FM_REPLAY", raising=False)
    yield


@pytest.fixture
def fresh_plugins():
    """A plugin manager with the default plugins, rebuilt after the test."""
    from flowmason.kernel import plugins

    pm = plugins.reset(os.environ.get("FM_PLUGINS"))
    yield pm
    plugins.reset()
