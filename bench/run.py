"""Benchmark runner: times the engine's standard workloads beside their asyncio floors.

    python bench/run.py            # table
    python bench/run.py --json     # one JSON object keyed by workload (W1..W4)
    python bench/run.py --all      # also the storage, LLM, serverless, auth, debug and events suites

Every run goes through the runner, as a host starts it (resolve, the content-keyed plan
cache, execute); "recorded" writes the run to SQLite, as `fm run` does by default.
W1 chain: 200 sequential plain-function stages, recorded and unrecorded; and recorded with an
   idle stage gate (a debugger attached, no breakpoint set). W1a: the same with async stages.
W2 fan-out: 1 stage, 500 parallel stages awaiting 20 ms, a join; recorded and unrecorded.
W3 cold start: a fresh process running `fm run` on a 1-stage pipeline; `import flowmason.kernel`.
W4 scale: W2 with 5,000 stages; wall time and peak RSS (measured in a fresh process).
W5 compile: `compile_plan` of a 20,000-stage chain; `compile_cached` answering it again (the content key).
W6 first run: a 2,000-stage chain run once in a fresh process (parse, compile, execute, recorded to
   SQLite) against running it again with the plan compiled; and `fm run` of it as a user pays it.
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
    "W1": "≤25 µs/stage recorded; idle gate ≤10%",
    "W1a": "≤50 µs/stage recorded",
    "W2": "recorded ≤1.5× floor",
    "W3": "≤250 ms fm run, ≤80 ms import",
    "W4": "recorded ≤1.5× floor, ≤120 MB peak RSS",
    "W5": "≤1 s compile",
    "W6": "parse + compile ≤ 60 ms",
}


def _engine():
    from flowmason.kernel import plugins

    plugins.reset(None, extra=[W.BenchPlugin()])
    from flowmason.kernel.model import parse_pipeline
    from flowmason.kernel.runner import Runner

    return Runner, parse_pipeline


def _run_once(pipeline, recorder=None, gate=None) -> float:
    """One run as a host starts it: through the runner (resolve, the content-keyed plan cache, execute)."""
    Runner, _ = _engine_cached()
    runner = Runner(recorder=recorder, gate=gate)
    t0 = time.perf_counter()
    asyncio.run(runner.run(pipeline, {"x": 1}))
    return time.perf_counter() - t0


_cache: dict = {}


def _engine_cached():
    if "engine" not in _cache:
        _cache["engine"] = _engine()
    return _cache["engine"]


def _idle_gate():
    """A debugger attached with no breakpoint set (the debugger plugin's session)."""
    from flowmason.plugins.debugger import DebugSession

    return DebugSession()


def _recording(fn):
    from flowmason.kernel.runs import RunRepository
    from flowmason.kernel.storage import open_store

    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"sqlite:///{d}/bench.db")
        try:
            return fn(RunRepository(store))
        finally:
            store.close()


def _chain(doc: dict, floor, repeat: int, gate=None) -> dict:
    _, parse = _engine_cached()
    n = len(doc["stages"])
    p = parse(doc)
    _run_once(p)  # warm: the plan compiled once, like a server that has run it before
    unrecorded = min(_run_once(p) for _ in range(repeat))

    def recorded_runs(repo):
        _run_once(p, repo)
        out = {"recorded": min(_run_once(p, repo) for _ in range(repeat))}
        if gate is not None:
            out["gated"] = min(_run_once(p, repo, gate) for _ in range(repeat))
        return out

    rec = _recording(recorded_runs)
    floor_s = W.timed(lambda: floor(n), repeat)
    out = {
        "wall_s": rec["recorded"], "floor_wall_s": floor_s, "unrecorded_wall_s": unrecorded,
        "per_stage_us": (rec["recorded"] - floor_s) / n * 1e6,
        "per_stage_unrecorded_us": (unrecorded - floor_s) / n * 1e6,
    }
    if gate is not None:
        out["gated_wall_s"] = rec["gated"]
        out["gate_overhead"] = rec["gated"] / rec["recorded"] - 1
    return out


def w1(repeat: int = 15) -> dict:
    return _chain(W.chain(200), W.floor_chain, repeat, gate=_idle_gate())


def w1_async(repeat: int = 15) -> dict:
    return _chain(W.async_chain(200), W.floor_async_chain, repeat)


def fan(n: int, repeat: int = 5) -> dict:
    _, parse = _engine_cached()
    p = parse(W.fan_out(n))
    _run_once(p)
    unrecorded = statistics.median(_run_once(p) for _ in range(repeat))

    def recorded(repo):
        _run_once(p, repo)
        return statistics.median(_run_once(p, repo) for _ in range(repeat))

    wall = _recording(recorded)
    floor = statistics.median(W.timed(lambda: W.floor_fan_out(n)) for _ in range(repeat))
    return {"wall_s": wall, "unrecorded_wall_s": unrecorded, "floor_wall_s": floor, "stages": n + 2}


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
    return {"wall_s": engine["wall_s"], "unrecorded_wall_s": engine["unrecorded_wall_s"],
            "floor_wall_s": floor["wall_s"], "peak_rss_mb": engine["peak_rss_mb"],
            "floor_peak_rss_mb": floor["peak_rss_mb"], "stages": engine["stages"]}


def w5(n: int = 20_000, repeat: int = 3) -> dict:
    from flowmason.kernel.plan import compile_cached, compile_plan
    from flowmason.kernel.plugins import get_registry

    _, parse = _engine_cached()
    comps = get_registry().components
    p = parse(W.chain(n))
    compile_s = min(_seconds(lambda: compile_plan(p, comps)) for _ in range(repeat))
    cpu_s = min(_seconds(lambda: compile_plan(p, comps), time.process_time) for _ in range(repeat))
    compile_cached(p, comps)
    cached_s = min(_seconds(lambda: compile_cached(p, comps)) for _ in range(repeat))
    return {"wall_s": compile_s, "cpu_s": cpu_s, "cached_s": cached_s, "stages": n}


def _seconds(fn, clock=time.perf_counter) -> float:
    # CPU time (process_time) beside wall time: on a shared machine the wall clock also counts other processes
    t0 = clock()
    fn()
    return clock() - t0


def first_run(n: int = 2_000) -> dict:
    """In this (fresh) process: the first run of an n-stage chain, compile included, then a compiled run."""
    from flowmason.kernel.plan import compile_plan
    from flowmason.kernel.plugins import get_registry
    from flowmason.kernel.runs import RunRepository
    from flowmason.kernel.storage import open_store

    from flowmason.kernel.executor import Execution

    _, parse = _engine_cached()
    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"sqlite:///{d}/bench.db")
        repo = RunRepository(store)

        def once(plan=None):
            t0 = time.perf_counter()
            plan = plan or compile_plan(parse(W.chain(n)), get_registry().components)
            t1 = time.perf_counter()
            asyncio.run(Execution(plan, {"x": 1}, recorder=repo).execute())
            return time.perf_counter() - t0, t1 - t0, plan

        first, compiling, plan = once()
        again = min(once(plan)[0] for _ in range(3))
        store.close()
    return {"first_s": first, "parse_compile_s": compiling, "compiled_s": again}


def w6(n: int = 2_000, repeat: int = 3) -> dict:
    inproc = _child(f"R.first_run({n})")
    fm = [sys.executable, "-m", "flowmason.kernel.cli"]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "chain.pipeline.json"
        p.write_text(json.dumps(W.builtin_chain(n)))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["FM_HOME"] = d
        runs = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run(fm + ["run", str(p), "--input", '{"x": 1}', "-q"], env=env, check=True, capture_output=True)
            runs.append(time.perf_counter() - t0)
    return {"wall_s": inproc["first_s"], "parse_compile_s": inproc["parse_compile_s"], "compiled_s": inproc["compiled_s"],
            "fm_run_s": statistics.median(runs), "stages": n}


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
    return {"W1": w1(), "W2": fan(500), "W3": w3(), "W4": w4(), "W5": w5(), "W6": w6()}


OPTIONAL_SUITES = {
    "storage": ("bench.storage", "run_storage_bench"),
    "llm": ("bench.llm", "run_llm_bench"),
    "serverless": ("bench.serverless", "run_serverless_bench"),
    "auth": ("bench.auth", "run_auth_bench"),
    "debug": ("bench.debug", "run_debug_bench"),
    "events": ("bench.events", "run_events_bench"),
}


def table(results: dict) -> str:
    lines = [f"{'workload':<9} {'engine':>12} {'asyncio floor':>14} {'detail':<52} target"]
    for key, label in (("W1", "sync"), ("W1a", "async")):
        r = results[key]
        detail = "%s: %.1f µs/stage recorded, %.1f unrecorded" % (label, r["per_stage_us"], r["per_stage_unrecorded_us"])
        if "gate_overhead" in r:
            detail += ", gate +%.0f%%" % (r["gate_overhead"] * 100)
        lines.append(f"{key:<9} {r['wall_s'] * 1e3:>9.2f} ms {r['floor_wall_s'] * 1e3:>11.3f} ms {detail:<52} {TARGETS[key]}")
    w2 = results["W2"]
    detail = "%.2f× floor; unrecorded %.1f ms" % (w2["wall_s"] / w2["floor_wall_s"], w2["unrecorded_wall_s"] * 1e3)
    lines.append(f"{'W2':<9} {w2['wall_s'] * 1e3:>9.2f} ms {w2['floor_wall_s'] * 1e3:>11.2f} ms {detail:<52} {TARGETS['W2']}")
    w3r = results["W3"]
    lines.append(f"{'W3':<9} {w3r['wall_s'] * 1e3:>9.1f} ms {w3r['floor_wall_s'] * 1e3:>11.1f} ms "
                 f"{'import flowmason.kernel %.1f ms' % (w3r['import_kernel_s'] * 1e3):<52} {TARGETS['W3']}")
    w4r = results["W4"]
    lines.append(f"{'W4':<9} {w4r['wall_s'] * 1e3:>9.1f} ms {w4r['floor_wall_s'] * 1e3:>11.1f} ms "
                 f"{'%.2f× floor; peak RSS %.0f MB (floor %.0f MB)' % (w4r['wall_s'] / w4r['floor_wall_s'], w4r['peak_rss_mb'], w4r['floor_peak_rss_mb']):<52} {TARGETS['W4']}")
    w5r = results["W5"]
    lines.append(f"{'W5':<9} {w5r['wall_s'] * 1e3:>9.1f} ms {'':>14} "
                 f"{'20,000 stages, %.0f ms CPU; cached %.1f ms' % (w5r['cpu_s'] * 1e3, w5r['cached_s'] * 1e3):<52} "
                 f"{TARGETS['W5']}")
    w6r = results["W6"]
    lines.append(f"{'W6':<9} {w6r['wall_s'] * 1e3:>9.1f} ms {'':>14} "
                 f"{'2,000: compile %.0f, compiled run %.0f, fm run %.0f ms' % (w6r['parse_compile_s'] * 1e3, w6r['compiled_s'] * 1e3, w6r['fm_run_s'] * 1e3):<52} "
                 f"{TARGETS['W6']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--all", action="store_true", help="also run the other suites in bench/")
    ap.add_argument("--only", help="comma-separated workloads, e.g. W1,W2")
    args = ap.parse_args(argv)
    runners = {"W1": w1, "W1a": w1_async, "W2": lambda: fan(500), "W3": w3, "W4": w4, "W5": w5, "W6": w6}
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
