"""Authenticated GET throughput through the local HTTP API, without and with each rate-limit backend.

    python bench/auth.py            # table
    python bench/auth.py --json     # one JSON object

The API is ``fm serve`` (uvicorn) in its own process on 127.0.0.1,
configured only through the documented switches (``FM_AUTH=1``,
``FM_RATELIMIT``, ``FM_RATELIMIT_BACKEND``, ...), with authentication on
(EdDSA access tokens, sessions and users in a SQLite file). The client sends ``GET /runs`` with a bearer token from
``concurrency`` connections until ``requests`` have been answered; every
answer must be 200 (the limit is set far above the load, so the limiter
does all its work but never refuses). Figures are requests per second,
best of ``repeat`` rounds after a warm-up round (noise only slows a round
down). Backends: memory; Redis (a redis-server started here; skipped if
the binary is absent); DynamoDB (moto's server mode on 127.0.0.1, so it
measures moto more than DynamoDB); the store limiter on SQLite; hybrid
(Redis with memory fallback).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BACKENDS = ("noauth", "none", "memory", "redis", "dynamodb", "sqlite", "hybrid")


@contextlib.contextmanager
def _serve(env: dict[str, str], store_url: str) -> Any:
    """``fm serve`` in its own process (so client and server do not share a GIL), configured by env only."""
    import os
    import subprocess

    import httpx

    from tests.support.net import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from flowmason.kernel.cli import main; main()", "serve", "--port", str(port),
         "--store", store_url],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # up to ~30 s for the server to answer
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError("fm serve exited at start")
            time.sleep(0.1)
        else:
            raise RuntimeError("fm serve did not answer /health")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _load(url: str, headers: dict, requests: int, concurrency: int) -> float:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        remaining = requests
        bad: list[int] = []

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                resp = await client.get("/runs", headers=headers)
                if resp.status_code != 200:
                    bad.append(resp.status_code)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    if bad:
        raise RuntimeError(f"{len(bad)} requests failed, e.g. HTTP {bad[0]}")
    return requests / elapsed


def _one(backend: str, requests: int, concurrency: int, repeat: int) -> float:
    import httpx

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        store = f"sqlite:///{tmp}/api.db"
        env = {"FM_AUTH": "0" if backend == "noauth" else "1", "FM_AUTH_STORE": store, "FM_RATELIMIT": ""}
        if backend not in ("none", "noauth"):
            env.update(FM_RATELIMIT=f"{10**9}/60", FM_RATELIMIT_BACKEND=backend if backend != "sqlite" else "store")
            if backend in ("redis", "hybrid"):
                from tests.support.redis_server import local_redis

                env["FM_RATELIMIT_REDIS"] = stack.enter_context(local_redis())
            elif backend == "dynamodb":
                from tests.support.dynamodb import dynamodb_url, local_dynamodb

                endpoint = stack.enter_context(local_dynamodb())
                env.update(FM_RATELIMIT_STORE=dynamodb_url(endpoint), AWS_ACCESS_KEY_ID="testing",
                           AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
            else:
                env["FM_RATELIMIT_STORE"] = f"sqlite:///{tmp}/limits.db"
        if backend != "noauth":  # an admin makes the account (`fm auth create-user` does the same): signup is off
            from flowmason.kernel.storage import open_store
            from flowmason.plugins.auth import AuthService, AuthSettings

            AuthService(AuthSettings(), open_store(store)).register("bench@example.com", "correct horse battery staple")
        url = stack.enter_context(_serve(env, store))
        headers: dict[str, str] = {}
        if backend != "noauth":
            resp = httpx.post(f"{url}/auth/login", json={"email": "bench@example.com",
                                                          "password": "correct horse battery staple"}, timeout=30)
            resp.raise_for_status()
            headers = {"Authorization": f"Bearer {resp.json()['access_token']}"}
        asyncio.run(_load(url, headers, max(50, requests // 10), concurrency))  # warm-up
        return max(asyncio.run(_load(url, headers, requests, concurrency)) for _ in range(repeat))


def run_auth_bench(requests: int = 2000, concurrency: int = 16, repeat: int = 3) -> dict:
    """Requests per second of an authenticated GET, per limiter backend.

    "none" is authentication without a limiter; "noauth" is the local single-user mode (no authenticator,
    no limiter), the floor the others are compared with.
    """
    from tests.support.redis_server import redis_binary

    import os

    results: dict[str, Any] = {"requests": requests, "concurrency": concurrency, "repeat": repeat, "rps": {},
                               # other work on the machine blurs these figures; say how much there was
                               "load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    for backend in BACKENDS:
        if backend in ("redis", "hybrid") and redis_binary() is None:
            results["rps"][backend] = None
            continue
        n = requests if backend != "dynamodb" else max(200, requests // 4)  # moto is slow; keep the round short
        results["rps"][backend] = round(_one(backend, n, concurrency, repeat), 1)
    base = results["rps"]["none"]
    results["relative_to_no_limiter"] = {k: (round(v / base, 3) if v else None) for k, v in results["rps"].items()}
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    res = run_auth_bench(args.requests, args.concurrency, args.repeat)
    if args.json:
        print(json.dumps(res))
        return
    print(f"authenticated GET /runs, {res['requests']} requests, {res['concurrency']} connections, best of {res['repeat']}"
          f" (load average {res['load_average_1m']} on {res['cpus']} CPUs)")
    for backend, rps in res["rps"].items():
        rel = res["relative_to_no_limiter"][backend]
        print(f"  {backend:<9} {('skipped' if rps is None else f'{rps:8.1f} req/s'):>14}  "
              f"{'' if rel is None else f'{rel:.2f}x of no limiter'}")


if __name__ == "__main__":
    main()
