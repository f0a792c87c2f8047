"""The example pipelines a new user runs first: they validate, run, and give the documented answers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowmason.kernel import plugins
from flowmason.kernel.model import load_pipeline
from flowmason.kernel.plan import compile_plan

EXAMPLES = Path(__file__).parents[3] / "examples"
MINE = ["fetch-json.pipeline.json", "hello.pipeline.json", "orders-report.pipeline.json"]


@pytest.mark.parametrize("name", MINE)
def test_example_validates(name):
    p = load_pipeline(EXAMPLES / name)
    compile_plan(p, plugins.get_registry().components)
    assert p.description and p.example_input is not None


def test_hello_busy_day(ops):
    p = load_pipeline(EXAMPLES / "hello.pipeline.json")
    logs = []
    run = ops.run(p, p.example_input, listeners=[lambda k, r, s, d: k == "stage.log" and logs.append((s.id, d["level"]))])
    assert run.output["greeting"] == "Hello, Ada!"
    assert run.output["day"] == "busy"
    assert run.output["message"] == "Hello, Ada! 2 urgent task(s) today: ship the release, fix the login bug."
    assert [t["urgent"] for t in run.output["tasks"]] == [True, False, True]
    assert [t["position"] for t in run.output["tasks"]] == [1, 2, 3]
    assert logs == [("busy-day", "warning")]


def test_hello_defaults_calm_day(ops):
    run = ops.run(load_pipeline(EXAMPLES / "hello.pipeline.json"))
    assert run.output == {"greeting": "Hello, world!", "day": "calm", "message": "Hello, world! Nothing urgent today.",
                          "tasks": [{"title": "water the plants", "urgent": False, "position": 1}]}


def test_fetch_json_describes_a_json_api(ops, http_server):
    http_server.json_route("GET", "/repo", {"name": "cpython", "stars": 1, "owner": {"login": "python"}})
    run = ops.run(load_pipeline(EXAMPLES / "fetch-json.pipeline.json"), {"url": f"{http_server.base}/repo"})
    out = run.output
    assert out["ok"] is True and out["status_code"] == 200 and out["kind"] == "object"
    assert out["keys"] == ["name", "owner", "stars"] and out["content_type"] == "application/json"
    assert http_server.requests[0].headers["user-agent"] == "flowmason-example"


@pytest.mark.parametrize("where,words", [("/status/404", "returned HTTP 404"), ("closed", "Connection refused")])
def test_fetch_json_turns_failures_into_an_answer(ops, http_server, closed_port, where, words):
    url = f"http://127.0.0.1:{closed_port}/x" if where == "closed" else f"{http_server.base}{where}"
    out = ops.run(load_pipeline(EXAMPLES / "fetch-json.pipeline.json"), {"url": url}).output
    assert out["ok"] is False and out["failed_stage"] == "fetch" and words in out["error"]


def test_orders_report(ops):
    p = load_pipeline(EXAMPLES / "orders-report.pipeline.json")
    out = ops.run(p, p.example_input).output
    assert out["text"] == ("3 of 4 orders paid, revenue 462.5. Big orders (>= 100): A-1, A-3. "
                           "Batch totals: 420.5, 42.")


def test_orders_report_rejects_a_bad_order(ops):
    p = load_pipeline(EXAMPLES / "orders-report.pipeline.json")
    err, _ = ops.fails(p, {"orders": [{"id": "A-1", "amount": -3, "status": "paid"}]})
    assert err.stage == "check-orders" and "amount" in err.message


def test_readme_command(tmp_path):
    """`fm run examples/hello.pipeline.json --input '{...}'` prints the output as JSON on stdout."""
    env = {**os.environ, "FM_HOME": str(tmp_path / "home")}
    fm = Path(sys.executable).with_name("fm")
    cmd = [str(fm), "run", str(EXAMPLES / "hello.pipeline.json"), "--input", '{"name": "Ada", "tasks": [{"title": "ship it", "priority": "high"}]}']
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["day"] == "busy" and out["message"] == "Hello, Ada! 1 urgent task(s) today: ship it."
    assert "ok        summary" in done.stderr
