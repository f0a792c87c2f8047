"""Where a run's events live on the storage contract, and how an event item reads.

Events sit in the run's own partition (``{ns}run#{run_id}``, beside the run
record and its stage results, see kernel/runs.py), so they go wherever the
run goes:

    sk = "event#{seq:09d}"   {"event": SSE name, "data": {...}, "at": epoch s[, "final": true]}
    sk = "event-seq"         {"n": the last seq handed out}   (an atomic counter)

Why an atomic counter for ``seq`` rather than a time-ordered id: the
writers of one run are not one process. A continuation resumes on another
Lambda, and fan-out chunks run in parallel on several; their clocks
disagree by milliseconds, and a reader that resumes "after N" must never
find a later event filed under a smaller number than one it already saw
from another host. ``store.increment`` gives every flush a block of
numbers that no other writer of the run gets, in the order the blocks were
asked for; it costs one write per flush (not per event) because a flush
reserves its whole block at once. The one thing it cannot promise is that
blocks land in the order they were reserved when two writers flush at the
same moment: the reader (``reader.EventCursor``) waits a grace period for
such a hole before it moves past it.
"""
from __future__ import annotations

PREFIX = "event#"
SEQ_KEY = "event-seq"  # not under PREFIX: a query of the events never returns the counter
SEQ_FIELD = "n"


def run_pk(namespace: str, run_id: str) -> str:
    return f"{namespace}run#{run_id}"


def event_sk(seq: int) -> str:
    return f"{PREFIX}{seq:09d}"


def seq_of(sk: str) -> int:
    return int(sk[len(PREFIX):])
