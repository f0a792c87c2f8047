"""Storage workload: stage-result writes and paginated queries, per backend, beside raw sqlite3.

    python bench/storage.py                 # table
    python bench/storage.py --json          # one JSON object
    python bench/storage.py --dynamodb-scale 1     # the full workload on DynamoDB too (minutes)

Per backend: 10,000 writes of a stage-result-shaped dict (~390 bytes of
JSON, 100 runs x 100 stages, the shape ``kernel/runs.py`` records) with
``put``, then 1,000 queries of 20 items that walk the runs page by page
with the cursor. The floor is plain ``sqlite3`` on an identical file doing
the same statements (the backend's own SQL text, ``json.dumps``/``json.loads``),
without the contract's checks, item objects or error translation; the
target is the SQLite backend within 1.5x of it. DynamoDB runs against
moto's server on 127.0.0.1, so its numbers measure the HTTP path and moto,
not AWS; by default it gets a tenth of the workload (1,000 writes, 100
queries), because moto takes ~7 ms per write and a query's cost grows with
the table (~60 ms at 1,000 items), which would make the full run take minutes.

Each SQLite measurement is the best of ``repeat`` runs on a fresh file, the
backend and the floor interleaved so that machine noise hits both.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WRITES = 10_000
QUERIES = 1_000
PAGE = 20
STAGES_PER_RUN = 100
TARGET_RATIO = 1.5


def stage_result(run: int, stage: int) -> tuple[str, str, dict[str, Any]]:
    """One stage result as the run recorder writes it (pk, sk, data)."""
    now = 1_732_550_000.0 + run * 10 + stage * 0.01
    return (
        f"run#bench-{run:04d}",
        f"stage#s{stage:03d}",
        {
            "stage_id": f"s{stage:03d}",
            "component_type": "bench-noop",
            "status": "completed",
            "input": {"text": "summarise the quarterly numbers", "n": stage},
            "output": {"summary": "revenue up 4%, costs flat, margin up", "tokens": 37 + stage},
            "error": None,
            "started_at": now,
            "finished_at": now + 0.004,
            "duration_ms": 4.2,
            "attempts": 1,
            "usage": {"input_tokens": 120, "output_tokens": 37},
            "iteration": None,
        },
    )


def workload(writes: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [stage_result(i // STAGES_PER_RUN, i % STAGES_PER_RUN) for i in range(writes)]


def page_walk(query_page: Callable[[str, str | None], tuple[int, Any]], runs: int, queries: int) -> int:
    """Run ``queries`` page queries walking run after run with the cursor; returns items read."""
    run, cursor, total = 0, None, 0
    for _ in range(queries):
        count, cursor = query_page(f"run#bench-{run:04d}", cursor)
        total += count
        if cursor is None:
            run = (run + 1) % runs
    return total


# -- the floor: raw sqlite3, same file layout and statements --


def raw_sqlite(path: Path, items, queries: int, runs: int) -> dict[str, float]:
    from flowmason.plugins.sqlite_store.schema import apply_migrations
    from flowmason.plugins.sqlite_store.store import _PUT, _QUERIES

    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=128)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    apply_migrations(conn)
    dumps, loads = json.dumps, json.loads
    execute = conn.execute
    t0 = time.perf_counter()
    for pk, sk, data in items:
        execute(_PUT, (pk, sk, dumps(data), None)).fetchone()
    write_s = time.perf_counter() - t0

    first, after = _QUERIES[(">=", "<", False)], _QUERIES[(">", "<", False)]

    def page(pk: str, cursor: str | None) -> tuple[int, Any]:
        if cursor is None:
            rows = execute(first, (pk, "stage#", "stage$", time.time(), PAGE + 1)).fetchall()
        else:
            rows = execute(after, (pk, cursor, "stage$", time.time(), PAGE + 1)).fetchall()
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        [(r[0], loads(r[1]), r[2], r[3]) for r in rows]
        return len(rows), (rows[-1][0] if more else None)

    t0 = time.perf_counter()
    page_walk(page, runs, queries)
    query_s = time.perf_counter() - t0
    conn.close()
    return {"write_s": write_s, "query_s": query_s}


# -- the backends, through the contract --


def through_store(store, items, queries: int, runs: int) -> dict[str, float]:
    put = store.put
    t0 = time.perf_counter()
    for pk, sk, data in items:
        put(pk, sk, data)
    write_s = time.perf_counter() - t0

    def page(pk: str, cursor: str | None) -> tuple[int, Any]:
        p = store.query(pk, prefix="stage#", limit=PAGE, cursor=cursor)
        return len(p.items), p.cursor

    t0 = time.perf_counter()
    page_walk(page, runs, queries)
    query_s = time.perf_counter() - t0
    return {"write_s": write_s, "query_s": query_s}


def _per_op(result: dict[str, float], writes: int, queries: int) -> dict[str, float]:
    return {
        **result,
        "write_us": result["write_s"] / writes * 1e6,
        "query_us": result["query_s"] / queries * 1e6,
        "writes": writes,
        "queries": queries,
    }


def bench_sqlite(writes: int = WRITES, queries: int = QUERIES, repeat: int = 3) -> dict[str, Any]:
    from flowmason.kernel.storage import open_store

    items = workload(writes)
    runs = max(1, writes // STAGES_PER_RUN)
    best: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="fm-bench-") as tmp:
        for i in range(repeat):
            for name in ("raw", "backend"):  # interleaved: noise hits both
                path = Path(tmp) / f"{name}-{i}.db"
                if name == "raw":
                    result = raw_sqlite(path, items, queries, runs)
                else:
                    store = open_store(f"sqlite://{path}")
                    result = through_store(store, items, queries, runs)
                    store.close()
                prev = best.get(name)
                best[name] = {k: min(v, prev[k]) if prev else v for k, v in result.items()}
    raw = _per_op(best["raw"], writes, queries)
    backend = _per_op(best["backend"], writes, queries)
    return {
        "raw_sqlite3": raw,
        "sqlite": backend,
        "write_ratio": backend["write_s"] / raw["write_s"],
        "query_ratio": backend["query_s"] / raw["query_s"],
    }


def bench_dynamodb(writes: int = WRITES, queries: int = QUERIES) -> dict[str, Any]:
    from flowmason.kernel.storage import open_store
    from flowmason.plugins.dynamodb_store.testing import dynamodb_url, local_dynamodb

    items = workload(writes)
    runs = max(1, writes // STAGES_PER_RUN)
    with local_dynamodb() as endpoint:
        store = open_store(dynamodb_url(endpoint, "fm-bench"))
        store.put("warm", "up", {})  # connection set-up is not part of the workload
        result = through_store(store, items, queries, runs)
    return _per_op(result, writes, queries)


def run_storage_bench(dynamodb_scale: float = 0.1, repeat: int = 3) -> dict[str, Any]:
    """The storage suite for bench/run.py --all: SQLite vs the raw floor, then DynamoDB on moto."""
    results: dict[str, Any] = bench_sqlite(repeat=repeat)
    results["target"] = f"sqlite within {TARGET_RATIO}x of raw sqlite3 (writes and queries)"
    results["met"] = results["write_ratio"] <= TARGET_RATIO and results["query_ratio"] <= TARGET_RATIO
    if dynamodb_scale > 0:
        try:
            results["dynamodb_moto"] = bench_dynamodb(
                max(STAGES_PER_RUN, int(WRITES * dynamodb_scale)), max(1, int(QUERIES * dynamodb_scale))
            )
        except ImportError as exc:  # boto3/moto not installed: the SQLite numbers still stand
            results["dynamodb_moto"] = {"error": f"needs the aws and dev extras: {exc}"}
    return results


def table(results: dict[str, Any]) -> str:
    lines = [f"{'store':<16} {'writes':>7} {'µs/write':>10} {'queries':>8} {'µs/query (20 items)':>20}"]
    for name in ("raw_sqlite3", "sqlite", "dynamodb_moto"):
        r = results.get(name)
        if not r:
            continue
        if "error" in r:
            lines.append(f"{name:<16} {r['error']}")
            continue
        lines.append(f"{name:<16} {r['writes']:>7} {r['write_us']:>10.1f} {r['queries']:>8} {r['query_us']:>20.1f}")
    lines.append(
        f"sqlite / raw: writes {results['write_ratio']:.2f}x, queries {results['query_ratio']:.2f}x "
        f"(target ≤ {TARGET_RATIO}x: {'met' if results['met'] else 'NOT met'})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--dynamodb-scale", type=float, default=0.1, help="fraction of the workload for DynamoDB (0: skip)")
    ap.add_argument("--repeat", type=int, default=3, help="SQLite runs to take the best of")
    args = ap.parse_args(argv)
    results = run_storage_bench(args.dynamodb_scale, args.repeat)
    print(json.dumps(results, indent=2) if args.json else table(results))


if __name__ == "__main__":
    main()
