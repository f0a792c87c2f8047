"""RunRepository.finished_iterations: a retried fan-out chunk reads its own items, not every iteration of the stage."""
from __future__ import annotations

import time

from flowmason.kernel.model import Run, StageResult, StageStatus
from flowmason.kernel.runs import RunRepository
from flowmason.kernel.storage import open_store


class Counting:
    """A store that counts the items its reads return."""

    def __init__(self, store):
        self.store = store
        self.read = 0

    def get(self, pk, sk):
        item = self.store.get(pk, sk)
        self.read += item is not None
        return item

    def query(self, pk, **kw):
        page = self.store.query(pk, **kw)
        self.read += len(page.items)
        return page

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_a_chunk_reads_only_the_iterations_it_asks_for(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    run = Run(pipeline_id="p", pipeline_name="p", inputs={})
    writer = RunRepository(store, group_commit=False)
    now = time.time()
    for i in range(2000):  # a stage of 2,000 iterations, every other one completed
        status = StageStatus.COMPLETED if i % 2 == 0 else StageStatus.FAILED
        writer.stage_recorded(run, StageResult(stage_id="work", component_type="tally", status=status, output={"i": i},
                                               started_at=now, finished_at=now, iteration=str(i)))
    counting = Counting(store)
    labels = {str(i) for i in range(100, 200)}  # chunk 1 of 100: "100" .. "199" (and not "1000" .. "1999")
    done = RunRepository(counting, group_commit=False).finished_iterations(run.id, "work", labels)
    assert done == {str(i): {"i": i} for i in range(100, 200, 2)}
    assert counting.read <= len(labels)
    store.close()
