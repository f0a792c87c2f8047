"""Run records of very large pipelines: the graph is stored whole, beside the run, and read back whole."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from flowmason.kernel.errors import StorageError
from flowmason.kernel.model import Run, RunStatus
from flowmason.kernel.runs import RunRepository
from flowmason.kernel.storage import MAX_ITEM_BYTES, open_store


@pytest.fixture(scope="module")
def dynamodb_endpoint():
    pytest.importorskip("moto")
    from tests.support.dynamodb import local_dynamodb

    with local_dynamodb() as endpoint:  # moto's server on 127.0.0.1: the real wire path
        yield endpoint


@pytest.fixture
def repo(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    yield RunRepository(store)
    store.close()


@pytest.fixture(params=["sqlite", "dynamodb"])
def any_repo(request, repo):
    if request.param == "sqlite":
        yield repo
        return
    from tests.support.dynamodb import dynamodb_url

    store = open_store(dynamodb_url(request.getfixturevalue("dynamodb_endpoint")))
    yield RunRepository(store)
    store.close()


def chain_graph(n):
    return {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(n)}


def graph_items(repo, run_id):
    return repo.store.query(repo._run_pk(run_id), prefix="graph#", limit=1000).items


def test_a_50000_stage_graph_is_recorded_and_read_back_whole(any_repo):
    repo = any_repo
    graph = chain_graph(50_000)
    graph["s7"].append("in:s3")  # a loop body entry, as Plan.graph() writes them
    assert len(json.dumps(graph)) > MAX_ITEM_BYTES  # it cannot fit in the run item
    run = Run(pipeline_id="chain50k", status=RunStatus.RUNNING, metadata={"graph": graph, "warnings": ["w"]})
    repo.run_started(run)
    run.status = RunStatus.COMPLETED
    repo.run_finished(run)
    back = repo.get_run(run.id)
    assert back.metadata["graph"] == graph and list(back.metadata["graph"]) == list(graph)
    assert back.metadata["warnings"] == ["w"] and "graph_parts" not in back.metadata
    assert back.status is RunStatus.COMPLETED
    assert run.metadata["graph"] is graph  # recording does not change the live run
    stored = repo.store.get(repo._run_pk(run.id), "meta").data["metadata"]
    assert "graph" not in stored and stored["graph_parts"] == len(graph_items(repo, run.id)) > 1


def test_a_small_graph_stays_in_the_run_item(repo):
    run = Run(pipeline_id="small", metadata={"graph": chain_graph(10)})
    repo.run_started(run)
    assert repo.get_run(run.id).metadata["graph"] == chain_graph(10)
    assert graph_items(repo, run.id) == []


def test_a_graph_missing_items_is_an_error_not_a_partial_graph(repo):
    run = Run(pipeline_id="chain", metadata={"graph": chain_graph(50_000)})
    repo.run_started(run)
    repo.store.delete(repo._run_pk(run.id), graph_items(repo, run.id)[-1].sk)
    with pytest.raises(StorageError, match="of its graph"):
        repo.get_run(run.id)


@pytest.mark.skipif(not os.environ.get("FM_SLOW_TESTS"), reason="about 30 s; set FM_SLOW_TESTS=1")
def test_fm_run_and_runs_show_on_a_50000_stage_chain(tmp_path):
    n = 50_000
    stages = [{"id": "s0", "type": "variable-set", "config": {"name": "v", "value": "{{input.x}}"}}]
    stages += [{"id": f"s{i}", "type": "variable-set", "depends_on": [f"s{i - 1}"],
                "config": {"name": "v", "value": f"{{{{upstream.s{i - 1}.value}}}}"}} for i in range(1, n)]
    path = tmp_path / "chain.pipeline.json"
    path.write_text(json.dumps({"id": "chain50k", "stages": stages}))
    fm = [sys.executable, "-m", "flowmason.kernel.cli"]
    env = dict(os.environ, FM_HOME=str(tmp_path / "home"))
    res = subprocess.run(fm + ["run", str(path), "--input", '{"x": 7}', "-q"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["value"] == 7
    (summary,) = json.loads(subprocess.run(fm + ["runs", "--json"], capture_output=True, text=True, env=env).stdout)
    show = subprocess.run(fm + ["runs", "show", summary["id"]], capture_output=True, text=True, env=env, timeout=300)
    assert show.returncode == 0, show.stderr
    graph = show.stdout.split("graph\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(graph) == n and graph[-1].split()[:3] == ["✓", f"s{n - 1}", "completed"]
    assert graph[-1].rstrip().endswith(f"← s{n - 2}") and max(len(line) for line in graph) < 200
