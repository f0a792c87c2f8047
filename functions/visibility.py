"""The worker's hold on the SQS messages of its batch: short visibility, extended by a heartbeat.

The run queue's own visibility timeout must be at least the worker's
function timeout (Lambda refuses the event source mapping otherwise), so a
message whose worker died (out of memory, killed at the time limit, a
crashed runtime) would only come back after that whole timeout. Instead,
while an invocation works on a batch, a daemon thread keeps every message
of the batch invisible for ``FM_VISIBILITY_S`` from its last beat, beating
every third of that. When the invocation ends the beats stop: Lambda
deletes the records that succeeded, and a failed one comes back within
``FM_VISIBILITY_S``; when the process dies the beats stop with it, and its
messages come back within ``FM_VISIBILITY_S`` too, by when their runs'
leases (``FM_LEASE_S``) have expired, so the redelivery resumes the run.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("flowmason.worker")


class Holding:
    """``with Holding(queue, receipts, seconds):`` keeps the messages invisible while the block runs."""

    def __init__(self, queue: Any, receipts: list[str], seconds: float) -> None:
        self.queue = queue
        self.receipts = [r for r in receipts if r]
        self.seconds = max(1, int(round(seconds)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.beats = 0

    def beat(self) -> None:
        try:
            self.queue.extend(self.receipts, self.seconds)
            self.beats += 1
        except Exception:  # noqa: BLE001 - a missed beat: the next one tries again before the messages return
            log.warning("could not extend the visibility of %d message(s)", len(self.receipts), exc_info=True)

    def _loop(self) -> None:
        every = max(0.2, self.seconds / 3)
        for _ in range(10**9):  # bounded; ends when the invocation does
            if self._stop.wait(every):
                return
            self.beat()

    def __enter__(self) -> "Holding":
        if self.receipts and hasattr(self.queue, "extend"):
            self.beat()
            self._thread = threading.Thread(target=self._loop, name="flowmason-visibility", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
