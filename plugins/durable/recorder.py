"""The recorder a hosted run (or one fan-out chunk of it) gives the executor.

It is ``RunRepository`` with two differences. A chunk is part of a run,
not a run: only its loop iterations are stored, and through a write-behind
buffer, because a chunk records hundreds of small results and one request
each would dominate its time. And a run's duration counts every
invocation it took, not only the last. A storage error is remembered, so
the host re-raises it (the message comes back) instead of reporting the
run as failed by its own stages.
"""
from __future__ import annotations

import json
from typing import Any

from flowmason.kernel.errors import StorageError
from flowmason.kernel.model import Run, StageResult
from flowmason.kernel.runs import RunRepository
from flowmason.kernel.storage import MAX_ITEM_BYTES, Store
from flowmason.kernel.storage_codec import check_size

FLUSH_EVERY = 50  # fan-out iterations recorded per batch write


class HostRecorder:
    def __init__(self, repo: RunRepository, *, chunk_mode: bool = False) -> None:
        self.chunk_mode = chunk_mode
        self.buffer = WriteBehind(repo.store) if chunk_mode else None
        # chunk iterations go through the write-behind store; everything else straight to the store
        self.repo = RunRepository(self.buffer, repo.ns) if self.buffer is not None else repo  # type: ignore[arg-type]
        self.storage_error: StorageError | None = None

    def flush(self) -> None:
        self.repo.flush()
        if self.buffer is not None:
            self.buffer.flush()

    def run_started(self, run: Run) -> None:
        if not self.chunk_mode:
            self.repo.run_started(run)

    def stage_recorded(self, run: Run, result: StageResult) -> None:
        if self.chunk_mode and result.iteration is None:
            return
        try:
            self.repo.stage_recorded(run, result)
            if self.buffer is not None and len(self.buffer.items) >= FLUSH_EVERY:
                self.flush()
        except StorageError as exc:
            self.storage_error = exc
            raise

    def run_finished(self, run: Run) -> None:
        if self.chunk_mode or self.storage_error is not None:
            return
        if run.started_at and run.finished_at:  # across invocations, not just the last one
            run.duration_ms = (run.finished_at - run.started_at) * 1000
        self.repo.run_finished(run)


def _checked(pk: str, sk: str, data: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Raise now what the store would raise at the flush, so RunRepository handles it as for a direct write:
    TypeError (it makes the value JSON-safe), ItemTooLargeError (it moves large values to the blob store)."""
    text = json.dumps(data)
    if (len(pk) + len(sk) + len(text)) * 4 > MAX_ITEM_BYTES:
        check_size(pk, sk, text)
    return pk, sk, data


class WriteBehind:
    """A Store whose plain puts are collected and written in batches (``batch_put``).

    Flushed every ``FLUSH_EVERY`` iterations, when the invocation parks, and
    before the chunk's result is written, so a chunk cut short by its
    deadline skips every recorded item when it continues; a worker killed
    outright re-runs at most the unflushed ``FLUSH_EVERY`` items of its chunk.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.items: list[tuple[str, str, dict[str, Any]]] = []

    def put(self, pk: str, sk: str, data: dict[str, Any], **conditions: Any) -> int:
        if any(conditions.values()):
            return self.store.put(pk, sk, data, **conditions)
        self.items.append(_checked(pk, sk, data))
        return 0

    def batch_put(self, items: Any) -> None:
        checked = [_checked(pk, sk, data) for pk, sk, data in items]  # all or none: a retry must not add twice
        self.items.extend(checked)

    def flush(self) -> None:
        items, self.items = self.items, []
        if items:
            self.store.batch_put(items)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)
