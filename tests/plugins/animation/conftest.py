"""Fixtures: test components, a real SQLite store, and a recorded run to animate."""
from __future__ import annotations

import pytest

from flowmason.kernel import plugins
from flowmason.kernel.runs import RunRepository
from flowmason.kernel.storage import open_store

from tests.plugins.timetravel.helpers import Components, pipeline, record, stage


@pytest.fixture
def repo(tmp_path):
    plugins.reset(None, extra=[Components()])
    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    yield RunRepository(store)
    store.close()
    plugins.reset()


def diamond():
    """fetch -> (summarise, translate) -> merge, plus a stage that fails and one skipped after it."""
    return pipeline(
        stage("fetch", "tt-sleep", seconds=0.05),
        stage("summarise", "tt-sleep", ("fetch",), seconds=0.12),
        stage("translate", "tt-sleep", ("fetch",), seconds=0.06),
        stage("merge", "tt-text", ("summarise", "translate"), text="done"),
        {**stage("flaky", "tt-fail", ("fetch",), message="upstream 503"), "on_error": "skip"},
        stage("after-flaky", "tt-text", ("flaky",), text="never"),
        pid="diamond",
    )


@pytest.fixture
def recorded(repo):
    run = record(repo, diamond())
    return repo, run
