"""Shared fixtures: an isolated data folder and store per test, and a fresh plugin manager."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    # never touch the developer's real ~/.local/share/flowmason
    monkeypatch.setenv("FM_HOME", str(tmp_path / "fmhome"))
    monkeypatch.delenv("FM_STORE", raising=False)
    monkeypatch.delenv("FM_PLUGINS", raising=False)
    monkeypatch.delenv("FM_RECORD", raising=False)
    monkeypatch.delenv("FM_REPLAY", raising=False)
    monkeypatch.delenv("FM_HTTP_DENY_PRIVATE", raising=False)  # a laptop's default unless a test is a server
    monkeypatch.delenv("FM_HTTP_ALLOW", raising=False)
    yield
    from flowmason.kernel.settings import forget_server_defaults

    forget_server_defaults()  # a server started in this test (fm serve's app, the Lambda handlers) leaves no defaults
    from flowmason.plugins.durable import reset_settings

    reset_settings()  # a test that set FM_HEARTBEAT_S and friends leaves the defaults behind


@pytest.fixture
def fresh_plugins():
    """A plugin manager with the default plugins, rebuilt after the test."""
    from flowmason.kernel import plugins

    pm = plugins.reset(os.environ.get("FM_PLUGINS"))
    yield pm
    plugins.reset()


FIXTURE = Path(__file__).parent / "fixtures" / "fm_hello_plugin"


@pytest.fixture(scope="session")
def installed_plugin(tmp_path_factory):
    """The fixture plugin package, pip-installed into a folder to put on PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    src = tmp_path_factory.mktemp("build") / "src"
    shutil.copytree(FIXTURE, src)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(src)],
        check=True, capture_output=True,
    )
    return target


@pytest.fixture
def probe():
    """Counting test components (tests/kernel/helpers.py) registered through the real hooks."""
    from flowmason.kernel import plugins

    from tests.kernel.helpers import Probe

    p = Probe()
    plugins.reset(None, extra=[p])
    yield p
    plugins.reset()


@pytest.fixture
def repo(tmp_path):
    """A RunRepository on a fresh SQLite file."""
    from flowmason.kernel.runs import RunRepository
    from flowmason.kernel.storage import open_store

    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    yield RunRepository(store)
    store.close()
