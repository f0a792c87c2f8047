"""LLM workload: W2 with model calls. 500 parallel generator stages against a local server that waits 20 ms.

    python bench/llm.py            # table
    python bench/llm.py --json     # one JSON object

The pipeline is W2's shape (one start stage, 500 parallel stages, a join)
with ``generator`` stages calling a provider through its real client code:
``openai`` (httpx, any OpenAI-compatible endpoint) and ``anthropic`` (the
official SDK). The server is ``tests.support.llm_server`` in its
own process (so it does not share our GIL), answering every call after
20 ms. The floor is 500 raw concurrent ``httpx`` POSTs of the same request
to the same server from one client, decoding the JSON answer; target: the
engine within 1.5x of the floor. One httpx client with hundreds of
connections is slow (httpcore's pool bookkeeping grows with the square of
its connections), so the providers spread calls over 16 small pools; the
"sharded floor" does the same with raw httpx, to show the engine's own cost. Each figure is the median of ``repeat`` rounds in one
event loop after a warm-up round (connections open, SDK imported),
engine and floor interleaved so machine noise hits both.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

N = 500
DELAY_MS = 20.0
TARGET_RATIO = 1.5


def pipeline_doc(provider: str, n: int = N) -> dict[str, Any]:
    stages: list[dict[str, Any]] = [{"id": "start", "component_type": "bench-noop", "config": {"i": "{{input.x}}"}}]
    stages += [
        {"id": f"g{i}", "component_type": "generator", "depends_on": ["start"], "provider": provider,
         "config": {"prompt": f"Summarise item {i} of {{{{input.x}}}}", "max_tokens": 64}}
        for i in range(n)
    ]
    stages.append({"id": "join", "component_type": "bench-noop", "depends_on": [f"g{i}" for i in range(n)], "config": {"i": 0}})
    return {"name": f"llm-{provider}", "stages": stages, "output_stage_id": "join"}


def start_server(delay_ms: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.llm_server", "--delay-ms", str(delay_ms)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,  # the harness is under tests/, not in the package
    )
    url = proc.stdout.readline().strip() if proc.stdout else ""
    if not url.startswith("http://"):
        proc.kill()
        raise RuntimeError("the local model server did not start")
    return proc, url


async def _floor_round(clients: list[Any], n: int) -> tuple[float, float]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Summarise item 0 of bench"}], "max_tokens": 64}

    async def one(client: Any) -> Any:
        resp = await client.post("/v1/chat/completions", json=body)
        resp.raise_for_status()
        return resp.json()["choices"][0]["message"]["content"]

    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(clients[i % len(clients)]) for i in range(n)))
    return time.perf_counter() - t0, time.process_time() - c0


async def _measure(url: str, provider: str, n: int, repeat: int) -> dict[str, Any]:
    import httpx

    from flowmason.kernel.executor import run_pipeline
    from flowmason.kernel.model import parse_pipeline

    pipeline = parse_pipeline(pipeline_doc(provider, n))
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=500)  # the providers' own limits
    engine: list[float] = []
    floor: list[float] = []
    engine_cpu: list[float] = []
    floor_cpu: list[float] = []
    sharded: list[float] = []
    shards = [httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=1000 // 16), timeout=60) for _ in range(16)]
    calls = 0
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        for i in range(repeat + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            run = await run_pipeline(pipeline, {"x": "bench"})
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            f, fcpu = await _floor_round([client], n)
            fs, _ = await _floor_round(shards, n)
            if run.status.value != "completed":
                raise RuntimeError(f"the run did not complete: {run.error}")
            if i:  # round 0 warms up connections and imports
                engine.append(wall)
                floor.append(f)
                engine_cpu.append(cpu)
                floor_cpu.append(fcpu)
                sharded.append(fs)
                calls = int((run.usage or {}).get("calls", 0))
    for c in shards:
        await c.aclose()
    wall, floor_wall = statistics.median(engine), statistics.median(floor)
    return {
        "provider": provider,
        "stages": n + 2,
        "model_calls": calls,
        "wall_s": round(wall, 4),
        "calls_per_s": round(n / wall, 1),
        "floor_wall_s": round(floor_wall, 4),
        "floor_calls_per_s": round(n / floor_wall, 1),
        "ratio": round(wall / floor_wall, 2),
        # the same calls spread over 16 httpx clients, as the providers do (see providers/base.shared_client)
        "floor_sharded_wall_s": round(statistics.median(sharded), 4),
        "ratio_to_sharded": round(wall / statistics.median(sharded), 2),
        # CPU per call in this process: steadier than wall time on a busy machine
        "cpu_ms_per_call": round(statistics.median(engine_cpu) / n * 1000, 3),
        "floor_cpu_ms_per_call": round(statistics.median(floor_cpu) / n * 1000, 3),
        "target_ratio": TARGET_RATIO,
        "rounds": repeat,
    }


def run_llm_bench(n: int = N, delay_ms: float = DELAY_MS, repeat: int = 5,
                  providers: tuple[str, ...] = ("openai", "anthropic")) -> dict[str, Any]:
    from bench.workloads import BenchPlugin
    from flowmason.kernel import plugins
    from flowmason.plugins.cassettes import close_cassettes

    proc, url = start_server(delay_ms)
    saved = {k: os.environ.get(k) for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY",
                                             "FM_RECORD", "FM_REPLAY")}
    os.environ.update(OPENAI_BASE_URL=url + "/v1", OPENAI_API_KEY="bench", ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY="bench")
    os.environ.pop("FM_RECORD", None)
    os.environ.pop("FM_REPLAY", None)
    close_cassettes()
    try:
        plugins.reset(None, extra=[BenchPlugin()])
        out: dict[str, Any] = {"server_delay_ms": delay_ms, "parallel_calls": n}
        for provider in providers:
            out[provider] = asyncio.run(_measure(url, provider, n, repeat))
        return out
    finally:
        proc.terminate()
        proc.wait(10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        plugins.reset()


def table(results: dict[str, Any]) -> str:
    lines = [f"{'provider':<10} {'engine':>10} {'calls/s':>9} {'floor':>10} {'calls/s':>9} {'ratio':>6}  "
             f"{'cpu/call':>9} {'floor cpu':>9} {'sharded floor':>13}  target"]
    for key, r in results.items():
        if not isinstance(r, dict):
            continue
        lines.append(f"{key:<10} {r['wall_s'] * 1e3:>7.1f} ms {r['calls_per_s']:>9.0f} {r['floor_wall_s'] * 1e3:>7.1f} ms "
                     f"{r['floor_calls_per_s']:>9.0f} {r['ratio']:>5.2f}x  {r['cpu_ms_per_call']:>6.2f} ms "
                     f"{r['floor_cpu_ms_per_call']:>6.2f} ms {r['floor_sharded_wall_s'] * 1e3:>10.1f} ms  ≤{r['target_ratio']}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--n", type=int, default=N, help="parallel model calls (default 500)")
    ap.add_argument("--delay-ms", type=float, default=DELAY_MS, help="server wait per call (default 20)")
    ap.add_argument("--repeat", type=int, default=5, help="measured rounds (default 5)")
    ap.add_argument("--providers", default="openai,anthropic", help="comma-separated providers")
    args = ap.parse_args(argv)
    results = run_llm_bench(args.n, args.delay_ms, args.repeat, tuple(args.providers.split(",")))
    print(json.dumps(results, indent=2) if args.json else table(results))


if __name__ == "__main__":
    main()
