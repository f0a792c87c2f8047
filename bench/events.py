"""What the run event log (plugins/events) costs a host: W1-like chains recorded with and without it.

    python bench/events.py            # table
    python bench/events.py --json     # one JSON object

Two chains of 200 stages, both recorded to a real SQLite store
(``RunRepository``), as the durable engine behind ``fm serve`` records
them: sync stages (plain functions, W1) and async stages (coroutines that
await once, what LLM stages are minus the network: W1a's chain). Each runs without
an event log and with one (``EventLog`` installed as the execution's
listener, as ``Jobs`` does), rounds interleaved so machine noise hits both.
Reported: best wall time of the rounds and the median CPU time of this
process (the steadier figure on a busy machine), µs per stage of the
difference, the events written per run and the event log's writes (counter
bumps + batches) per run. ``fm run`` installs no event log and pays nothing.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

N = 200


class _Counted:
    """The store, counting the event log's writes (the executor's recorder uses the store directly)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.writes = 0

    def batch_put(self, items: Any) -> None:
        self.writes += 1
        self.store.batch_put(items)

    def increment(self, *args: Any, **kw: Any) -> int:
        self.writes += 1
        return self.store.increment(*args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _pipeline(kind: str) -> Any:
    from bench.workloads import async_chain, chain
    from flowmason.kernel.model import parse_pipeline

    return parse_pipeline(chain(N) if kind == "sync" else async_chain(N))


def _round(plan: Any, repo: Any, events: Any) -> tuple[float, float]:
    """(wall, CPU) seconds of one run."""
    from flowmason.kernel.executor import Execution

    async def go() -> None:
        await Execution(plan, {"x": 1}, recorder=repo, listeners=[events] if events is not None else None).execute()

    c0, t0 = time.process_time(), time.perf_counter()
    asyncio.run(go())
    return time.perf_counter() - t0, time.process_time() - c0


def run_events_bench(rounds: int = 15) -> dict[str, Any]:
    from bench.workloads import BenchPlugin
    from flowmason.kernel import plugins
    from flowmason.kernel.executor import plan_for
    from flowmason.kernel.runs import RunRepository
    from flowmason.kernel.storage import open_store
    from flowmason.plugins.events import EventLog

    plugins.reset(None, extra=[BenchPlugin()])
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"sqlite:///{d}/bench.db")
        repo = RunRepository(store)
        counted = _Counted(store)
        for kind in ("sync", "async"):
            plan = plan_for(_pipeline(kind))
            _round(plan, repo, None)
            _round(plan, repo, EventLog(counted))  # warm both
            base, logged = [], []
            counted.writes = 0
            written = 0
            for i in range(rounds):
                order = (False, True) if i % 2 == 0 else (True, False)
                for with_log in order:
                    if with_log:
                        log = EventLog(counted)
                        logged.append(_round(plan, repo, log))
                        written += log.written
                    else:
                        base.append(_round(plan, repo, None))
            b, w = min(t for t, _ in base), min(t for t, _ in logged)
            bc, wc = statistics.median(c for _, c in base), statistics.median(c for _, c in logged)
            out[kind] = {
                "recorded_wall_ms": b * 1e3, "with_event_log_wall_ms": w * 1e3,
                "overhead_us_per_stage": (w - b) / N * 1e6, "overhead_pct": (w / b - 1) * 100,
                "recorded_cpu_ms": bc * 1e3, "with_event_log_cpu_ms": wc * 1e3,
                "cpu_overhead_us_per_stage": (wc - bc) / N * 1e6,
                "events_per_run": written / rounds, "event_log_writes_per_run": counted.writes / rounds,
            }
        store.close()
    plugins.reset()
    return out


def table(results: dict[str, Any]) -> str:
    lines = [f"{'chain 200':<10} {'recorded':>10} {'+ event log':>12} {'wall overhead':>22} "
             f"{'CPU overhead':>16} {'events':>7} {'writes':>7}"]
    for kind, r in results.items():
        lines.append(f"{kind:<10} {r['recorded_wall_ms']:>7.2f} ms {r['with_event_log_wall_ms']:>9.2f} ms "
                     f"{r['overhead_us_per_stage']:>6.1f} µs/stage ({r['overhead_pct']:>3.0f}%) "
                     f"{r['cpu_overhead_us_per_stage']:>7.1f} µs/stage "
                     f"{r['events_per_run']:>7.0f} {r['event_log_writes_per_run']:>7.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    results = run_events_bench(args.rounds)
    print(json.dumps(results, indent=2) if args.json else table(results))


if __name__ == "__main__":
    main()
