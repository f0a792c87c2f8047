"""Where a run's events live on the storage contract, and how an event item reads.

Events sit in the run's own partition (``{ns}run#{run_id}``, beside the run
record and its stage results, see kernel/runs.py), so they go wherever the
run goes:

    sk = "event#{last:09d}"  {"first": seq of its first event, "events": [
                                 {"event": SSE name, "data": {...}, "at": epoch s[, "final": true]}, ...]}
    sk = "event-seq"         {"n": the last seq handed out}   (an atomic counter)

One item holds the events of one flush (numbers ``first`` .. ``last``,
split into several items only past ``log.CHUNK_BYTES``): a 200-stage
chain's 402 events are two or three items, not 402, which is what makes
the log cheap on SQLite and on DynamoDB's per-item write units alike. An
item is keyed by its *last* number, so the query for "the events after N"
is ``start = event#{N+1}``: it returns exactly the items that hold an
event past N (the first may also hold some at or before N, which the
reader drops).

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


def chunk_row(pk: str, first: int, events: list[dict]) -> tuple[str, str, dict]:
    """The stored item of ``events`` numbered from ``first``."""
    return pk, event_sk(first + len(events) - 1), {"first": first, "events": events}
