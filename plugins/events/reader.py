"""Reading a run's event log in order, a poll at a time, for streams that resume "after N".

``EventCursor.poll()`` is one query of the events after the last one
read (more only when a page is full), never a read of the stage results.
Sequence numbers come in blocks reserved per flush (see ``layout``): two
writers of one run (parallel fan-out chunks) can land their blocks out of
order, so a poll that finds a hole (say 12 missing while 13 and 14 are
there) hands out 13 and 14 at once but keeps reading from 12 for up to
``HOLE_GRACE_S``, and hands out 12 when it lands; a hole still empty after
that (a writer that died between reserving and writing) is passed over.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from flowmason.kernel.storage import Store

from .layout import PREFIX, event_sk, run_pk, seq_of

HOLE_GRACE_S = 10.0
PAGE = 500
MAX_PAGES = 20  # per poll; the next poll goes on from there


@dataclass(frozen=True)
class Event:
    seq: int
    event: str  # the SSE event name
    data: dict[str, Any]
    final: bool = False  # the run's last event: a stream ends here
    at: float | None = None


@dataclass
class EventCursor:
    store: Store
    namespace: str
    run_id: str
    after: int = 0  # every event up to here was handed out
    seen: bool = False  # the run has an event log (an event was found)
    _ahead: set[int] = field(default_factory=set)  # handed out, past a hole
    _hole_since: float | None = None

    def poll(self, now: float | None = None) -> list[Event]:
        now = time.monotonic() if now is None else now
        pk = run_pk(self.namespace, self.run_id)
        out: list[Event] = []
        hole = False
        cursor = None
        for _ in range(MAX_PAGES):
            page = self.store.query(pk, prefix=PREFIX, start=event_sk(self.after + 1), limit=PAGE, cursor=cursor)
            for item in page.items:
                first = int(item.data.get("first", seq_of(item.sk)))
                for seq, data in enumerate(item.data.get("events") or (), start=first):
                    if seq <= self.after:
                        continue  # the start of a chunk that was read before
                    if seq not in self._ahead:
                        out.append(Event(seq, data.get("event", "message"), data.get("data") or {},
                                         bool(data.get("final")), data.get("at")))
                    if not hole and seq == self.after + 1:
                        self.after = seq
                        self._ahead.discard(seq)
                    else:
                        hole = True
                        self._ahead.add(seq)
            cursor = page.cursor
            if not cursor:
                break
        if out or self.after:
            self.seen = True
        if not hole:
            self._hole_since = None
        elif self._hole_since is None:
            self._hole_since = now
        elif now - self._hole_since > HOLE_GRACE_S:
            self.after = max(self._ahead)  # nobody is going to write it any more
            self._ahead.clear()
            self._hole_since = None
        return out


def read_events(store: Store, namespace: str, run_id: str, after: int = 0) -> list[Event]:
    """Every event of a run recorded so far, after ``after`` (tests, `fm` commands, exports)."""
    return EventCursor(store, namespace, run_id, after=after).poll()
