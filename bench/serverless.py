"""Serverless figures: Lambda handler import time (cold start) and POST /runs → completion on the local stack.

    python bench/serverless.py            # table
    python bench/serverless.py --json     # one JSON object

Import time: a fresh interpreter per sample imports ``flowmason.functions.api``
and ``flowmason.functions.worker`` with the environment the template gives
the functions (``FM_STORE=dynamodb://...``, ``FM_QUEUE_URL``), timed inside
the process (interpreter start-up excluded); the median of ``samples``.
Targets: API ≤ 600 ms, worker ≤ 400 ms. The API's first request then pays
for boto3 (the store and queue clients are made on first use); that is
reported too, measured in the same fresh process against the local stack.

Latency: the local stack (moto's DynamoDB + SQS on 127.0.0.1, a poller
invoking the worker handler as Lambda's event source mapping does), the
API Lambda handler fed API Gateway HTTP API v2 events; ``POST /runs`` of a
1-stage pipeline, then ``GET /runs/{id}/result`` until it is finished.
Reported: the POST's latency and the time to completion (median and max
of ``runs``). moto is slower than DynamoDB and SQS, so these bound the
overhead of the code paths, not AWS's own latency.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGETS = {"api_import_ms": 600.0, "worker_import_ms": 400.0}

_IMPORT = """
import json, sys, time
t = time.perf_counter()
import {module}
imported = time.perf_counter() - t
first = None
if {first_request}:
    t = time.perf_counter()
    r = {module}.handler({event}, None)
    assert r["statusCode"] == 200, r
    first = time.perf_counter() - t
print(json.dumps({{"import_s": imported, "first_request_s": first}}))
"""

ONE_STAGE = {"id": "bench-one", "name": "bench-one",
             "stages": [{"id": "only", "type": "json-transform", "config": {"data": "{{input}}", "template": {"x": "{{data.x}}"}}}]}


def _event(method: str, path: str, body: Any = None) -> dict[str, Any]:
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "bench.local"},
        "requestContext": {"accountId": "123456789012", "apiId": "bench", "domainName": "bench.local",
                           "domainPrefix": "bench", "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                                              "sourceIp": "127.0.0.1", "userAgent": "bench"},
                           "requestId": "bench", "routeKey": "$default", "stage": "$default",
                           "time": "25/Nov/2026:12:00:00 +0000", "timeEpoch": 0},
        "body": json.dumps(body) if body is not None else None, "isBase64Encoded": False,
    }


def _import_sample(module: str, env: dict[str, str], first_request: bool) -> dict[str, float | None]:
    code = _IMPORT.format(module=module, first_request=first_request, event=repr(_event("GET", "/runs")))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def import_times(env: dict[str, str], samples: int = 7) -> dict[str, Any]:
    # bytecode caching on, as in a Lambda package built by pip (which compiles on install)
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    _import_sample("flowmason.functions.api", env, first_request=False)  # writes the .pyc files once
    api = [_import_sample("flowmason.functions.api", env, first_request=True) for _ in range(samples)]
    worker = [_import_sample("flowmason.functions.worker", env, first_request=False) for _ in range(samples)]
    return {
        "api_import_ms": statistics.median(s["import_s"] for s in api) * 1000,
        "api_first_request_ms": statistics.median(s["first_request_s"] for s in api) * 1000,
        "worker_import_ms": statistics.median(s["import_s"] for s in worker) * 1000,
        "samples": samples,
    }


def run_latency(stack: Any, runs: int = 10) -> dict[str, Any]:
    import importlib

    os.environ.update(stack.environment())
    import flowmason.functions.api as api_module

    handler = importlib.reload(api_module).handler
    posts, completions = [], []
    for i in range(runs):
        t0 = time.perf_counter()
        r = handler(_event("POST", "/runs", {"pipeline": ONE_STAGE, "inputs": {"x": i}}), None)
        posts.append(time.perf_counter() - t0)
        assert r["statusCode"] == 202, r
        run_id = json.loads(r["body"])["id"]
        for _ in range(6000):  # bounded: 60 s
            got = handler(_event("GET", f"/runs/{run_id}/result"), None)
            if got["statusCode"] == 200:
                break
            time.sleep(0.01)
        else:
            raise RuntimeError(f"run {run_id} did not finish")
        body = json.loads(got["body"])
        assert body["status"] == "completed" and body["output"] == {"x": i}, body
        completions.append(time.perf_counter() - t0)
    return {
        "post_runs_ms_median": statistics.median(posts) * 1000,
        "post_runs_ms_max": max(posts) * 1000,
        "completion_ms_median": statistics.median(completions) * 1000,
        "completion_ms_max": max(completions) * 1000,
        "runs": runs,
    }


def run_serverless_bench(samples: int = 7, runs: int = 10) -> dict[str, Any]:
    from flowmason.functions.local_stack import LocalStack

    saved = dict(os.environ)
    try:
        with tempfile.TemporaryDirectory() as home:
            os.environ["FM_HOME"] = home
            with LocalStack(poll_interval_s=0.005) as stack:
                env = {**os.environ, **stack.environment(), "FM_HOME": home}
                result = {"imports": import_times(env, samples), "latency": run_latency(stack, runs)}
    finally:
        os.environ.clear()
        os.environ.update(saved)
    result["targets"] = TARGETS
    result["meets_targets"] = {k: result["imports"][k] <= v for k, v in TARGETS.items()}
    return result


def table(result: dict[str, Any]) -> str:
    imp, lat = result["imports"], result["latency"]
    return "\n".join([
        f"import flowmason.functions.api     {imp['api_import_ms']:8.1f} ms  (target ≤ {TARGETS['api_import_ms']:.0f})",
        f"  first API request (boto3 loads)  {imp['api_first_request_ms']:8.1f} ms",
        f"import flowmason.functions.worker  {imp['worker_import_ms']:8.1f} ms  (target ≤ {TARGETS['worker_import_ms']:.0f})",
        f"POST /runs (API Lambda handler)    {lat['post_runs_ms_median']:8.1f} ms median, {lat['post_runs_ms_max']:.1f} max",
        f"POST → completed, 1 stage          {lat['completion_ms_median']:8.1f} ms median, {lat['completion_ms_max']:.1f} max "
        f"(SQS → worker → DynamoDB on moto, {lat['runs']} runs)",
    ])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--samples", type=int, default=7)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args(argv)
    import logging

    logging.disable(logging.WARNING)
    result = run_serverless_bench(args.samples, args.runs)
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
