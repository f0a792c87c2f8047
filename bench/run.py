"""Benchmark runner: times the engine's standard workloads beside their asyncio floors.

    python bench/run.py            # table
    python bench/run.py --json     # one JSON object keyed by workload (W1..W4)
    python bench/run.py --all      # also the storage, LLM, serverless, auth, debug and events suites

W1 chain: 200 sequential trivial stages (recorded to SQLite, and with recording off).
W2 fan-out: 1 stage, 500 parallel stages awaiting 20 ms, a join.
W3 cold start: a fresh process running `fm run` on a 1-stage pipeline; `import flowmason.kernel`.
W4 scale: W2 with 5,000 stages; wall time and peak RSS (measured in a fresh process).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import workloads as W  # noqa: E402

TARGETS = {
    "W1": "≤50 µs/stage recorded, ≤15 µs/stage unrecorded",
    "W2": "≤60 ms wall",
    "W3": "≤300 ms fm run, ≤80 ms import",
    "W4": "≤250 ms wall, ≤150 MB peak RSS",
}


def _engine():
    from flowmason.kernel import plugins

    plugins.reset(None, extra=[W.BenchPlugin()])
    from flowmason.kernel.executor import Execution, plan_for
    from flowmason.kernel.model import parse_pipeline

    return Execution, plan_for, parse_pipeline


def _run_once(pipeline, recorder=None) -> float:
    Execution, plan_for, _ = _engine_cached()
    plan = plan_for(pipeline)

    async def go():
        await Execution(plan, {"x": 1}, recorder=recorder).execute()

    t0 = time.perf_counter()
    asyncio.run(go())
    return time.perf_counter() - t0


_cache: dict = {}


def _engine_cached():
    if "engine" not in _cache:
        _cache["engine"] = _engine()
    return _cache["engine"]


def w1(repeat: int = 15) -> dict:
    from flowmason.kernel.runs import RunRepository
    from flowmason.kernel.storage import open_store

    _, _, parse = _engine_cached()
    n = 200
    p = parse(W.chain(n))
    _run_once(p)  # warm: plan compiled once per pipeline, like a server would
    unrecorded = min(_run_once(p) for _ in range(repeat))
    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"sqlite:///{d}/bench.db")
        repo = RunRepository(store)
        _run_once(p, repo)
        recorded = min(_run_once(p, repo) for _ in range(repeat))
        store.close()
    floor = W.timed(lambda: W.floor_chain(n), repeat)
    return {
        "wall_s": recorded,
        "floor_wall_s": floor,
        "unrecorded_wall_s": unrecorded,
        "per_stage_us": (recorded - floor) / n * 1e6,
        "per_stage_unrecorded_us": (unrecorded - floor) / n * 1e6,
    }


def fan(n: int, repeat: int = 5) -> dict:
    _, _, parse = _engine_cached()
    p = parse(W.fan_out(n))
    _run_once(p)
    wall = statistics.median(_run_once(p) for _ in range(repeat))
    floor = statistics.median(W.timed(lambda: W.floor_fan_out(n)) for _ in range(repeat))
    return {"wall_s": wall, "floor_wall_s": floor, "stages": n + 2}


def _child(expr: str) -> dict:
    code = (
        "import json, resource, sys; sys.path.insert(0, %r); from bench import run as R; "
        "out = %s; out['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; print(json.dumps(out))"
    ) % (str(ROOT), expr)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def w4() -> dict:
    engine = _child("R.fan(5000, repeat=3)")
    floor = _child("{'wall_s': R.W.timed(lambda: R.W.floor_fan_out(5000), 3)}")
    return {"wall_s": engine["wall_s"], "floor_wall_s": floor["wall_s"], "peak_rss_mb": engine["peak_rss_mb"],
            "floor_peak_rss_mb": floor["peak_rss_mb"], "stages": engine["stages"]}


def w3(repeat: int = 7) -> dict:
    fm = [sys.executable, "-m", "flowmason.kernel.cli"]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "one.pipeline.json"
        p.write_text(json.dumps({"name": "one", "stages": [
            {"id": "only", "component_type": "return", "config": {"condition": True, "return_value": "{{input.x}}"}}]}))
        # bytecode caching on, as on a user's machine (pip compiles on install); some
        # sandboxes set PYTHONDONTWRITEBYTECODE, which would time the compiler instead
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["FM_HOME"] = d
        subprocess.run(fm + ["run", str(p), "--input", '{"x": 1}', "-q"], env=env, check=True, capture_output=True)
        runs = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run(fm + ["run", str(p), "--input", '{"x": 1}', "-q"], env=env, check=True, capture_output=True)
            runs.append(time.perf_counter() - t0)
        imports = []
        floors = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import flowmason.kernel"], check=True, env=env)
            imports.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
            floors.append(time.perf_counter() - t0)
    return {"wall_s": statistics.median(runs), "floor_wall_s": statistics.median(floors),
            "import_kernel_s": statistics.median(imports)}


def engine_suite() -> dict:
    return {"W1": w1(), "W2": fan(500), "W3": w3(), "W4": w4()}


OPTIONAL_SUITES = {
    "storage": ("bench.storage", "run_storage_bench"),
    "llm": ("bench.llm", "run_llm_bench"),
    "serverless": ("bench.serverless", "run_serverless_bench"),
    "auth": ("bench.auth", "run_auth_bench"),
    "debug": ("bench.debug", "run_debug_bench"),
    "events": ("bench.events", "run_events_bench"),
}


def table(results: dict) -> str:
    lines = [f"{'workload':<9} {'engine':>12} {'asyncio floor':>14} {'detail':<44} target"]
    w1r = results["W1"]
    lines.append(f"{'W1':<9} {w1r['wall_s'] * 1e3:>9.2f} ms {w1r['floor_wall_s'] * 1e3:>11.3f} ms "
                 f"{'%.1f µs/stage recorded, %.1f unrecorded' % (w1r['per_stage_us'], w1r['per_stage_unrecorded_us']):<44} {TARGETS['W1']}")
    w2 = results["W2"]
    lines.append(f"{'W2':<9} {w2['wall_s'] * 1e3:>9.2f} ms {w2['floor_wall_s'] * 1e3:>11.2f} ms {'502 stages, 500 × 20 ms awaits':<44} {TARGETS['W2']}")
    w3r = results["W3"]
    lines.append(f"{'W3':<9} {w3r['wall_s'] * 1e3:>9.1f} ms {w3r['floor_wall_s'] * 1e3:>11.1f} ms "
                 f"{'import flowmason.kernel %.1f ms' % (w3r['import_kernel_s'] * 1e3):<44} {TARGETS['W3']}")
    w4r = results["W4"]
    lines.append(f"{'W4':<9} {w4r['wall_s'] * 1e3:>9.1f} ms {w4r['floor_wall_s'] * 1e3:>11.1f} ms "
                 f"{'peak RSS %.0f MB (floor %.0f MB)' % (w4r['peak_rss_mb'], w4r['floor_peak_rss_mb']):<44} {TARGETS['W4']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--all", action="store_true", help="also run the other suites in bench/")
    ap.add_argument("--only", help="comma-separated workloads, e.g. W1,W2")
    args = ap.parse_args(argv)
    runners = {"W1": w1, "W2": lambda: fan(500), "W3": w3, "W4": w4}
    wanted = args.only.split(",") if args.only else list(runners)
    results = {k: runners[k]() for k in wanted}
    if args.all:
        import importlib

        # the serverless suite runs the worker in-process: keep its per-message logs out of the table
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

        for name, (module, fn) in OPTIONAL_SUITES.items():
            try:
                results[name] = getattr(importlib.import_module(module), fn)()
            except Exception as exc:  # noqa: BLE001 - one broken suite should not hide the others
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    elif set(wanted) == set(runners):
        print(table(results))
        for k, v in results.items():
            if k not in runners:
                print(f"\n[{k}]\n{json.dumps(v, indent=2, default=str)}")
    else:
        print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
