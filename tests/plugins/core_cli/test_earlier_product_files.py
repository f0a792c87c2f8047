"""The earlier product's own files, unchanged, through `fm validate` and `fm run` (nothing is downloaded).

The files in tests/fixtures/legacy are copied from ``flowmason`` 1.0.24
(MIT; NOTICE.md there says where each comes from). Between them they use
the forms that product writes: ``component`` (its ``flowmason init``),
``sample_input`` and ``example_input`` (run with no ``--input``),
``{{X.output.f}}`` (init) and ``{{stages.X.output}}`` (its MCP tool),
``$schema``, ``position`` and template metadata. A real
model server on 127.0.0.1 answers the AI nodes, a stdlib HTTP server the
ETL starter's fetch; every run is recorded in a SQLite store in tmp_path.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.plugins.providers.conftest import KEY, llm_server  # noqa: F401

LEGACY = Path(__file__).parents[2] / "fixtures" / "legacy"
FM = [sys.executable, "-m", "flowmason.kernel.cli"]


def _answer(api, body):
    system = " ".join(str(m.get("content")) for m in body.get("messages") or () if m.get("role") == "system")
    prompt = json.dumps([m for m in body.get("messages") or () if m.get("role") != "system"])
    if "expert editor" in system:
        return json.dumps({"improved_content": "Improved: " + prompt[-60:], "changes_made": ["tightened"]})
    if "content evaluator" in system:
        return json.dumps({"overall_rating": "good", "score": 0.8, "feedback": "Shorter sentences.", "improvements": []})
    return "Draft about " + prompt[-80:]


@pytest.fixture
def fm(llm_server, tmp_path):  # noqa: F811 - the fixture imported above
    llm_server.responder = _answer
    # the OpenAI-compatible provider: the files name no provider, and httpx starts faster than the anthropic SDK
    env = {**os.environ, "FM_PROVIDER": "openai", "OPENAI_BASE_URL": llm_server.url + "/v1", "OPENAI_API_KEY": KEY,
           "FM_STORE": f"sqlite:///{tmp_path / 'runs.db'}"}
    for name in ("FM_MODEL", "OPENAI_MODEL", "FM_REPLAY", "FM_RECORD"):
        env.pop(name, None)

    def call(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(FM + list(args), capture_output=True, text=True, env=env, timeout=120)

    call.server = llm_server
    return call


def test_every_file_validates_unchanged(fm):
    files = sorted(str(p) for p in LEGACY.glob("*.json"))
    res = fm("validate", *files)
    assert res.returncode == 0, res.stdout
    assert res.stdout.count("ok      ") == len(files) == 9


def test_init_starters_and_templates_run_on_their_own_sample_inputs(fm):
    prompts = lambda: [json.dumps(b["messages"]) for _, _, b in fm.server.requests]  # noqa: E731
    calls = lambda: len(fm.server.requests)  # noqa: E731
    # `flowmason init`'s default: `component`, `sample_input`, `$schema`
    res = fm("run", "-q", str(LEGACY / "init-main.pipeline.json"))
    assert res.returncode == 0, res.stderr
    assert "using the pipeline's sample_input" in res.stderr
    assert json.loads(res.stdout)["content"].startswith("Draft about")
    assert "Process this message: Hello, FlowMason!" in prompts()[-1]
    # `flowmason init --template ai-pipeline`: `{{generate.output.content}}` carries the draft to the improver
    res = fm("run", "-q", str(LEGACY / "init-ai-pipeline.pipeline.json"))
    assert res.returncode == 0, res.stderr
    assert calls() == 3  # one each: the JSON answers parse, no repair round
    assert "in a informative style" in prompts()[-2] and "Draft about" in prompts()[-1]
    assert json.loads(res.stdout)["improved_content"].startswith("Improved:")
    # a Studio template: example_input, position, generator -> critic -> improver over {{upstream.X.f}}
    res = fm("run", "-q", str(LEGACY / "content-review-loop.json"))
    assert res.returncode == 0, res.stderr
    assert "using the pipeline's example_input" in res.stderr
    assert calls() == 6 and "Shorter sentences." in prompts()[-1]
    # the MCP tool's example: `{{stages.extract.output}}`, the whole output of the first stage
    res = fm("run", "-q", str(LEGACY / "content-summarizer.pipeline.json"), "--input", '{"text": "owls hoot"}')
    assert res.returncode == 0, res.stderr
    assert "using the pipeline's" not in res.stderr
    assert "Summarize these key points: {" in prompts()[-1] and "owls hoot" in prompts()[-1]
    runs = json.loads(fm("runs", "--json").stdout)
    assert [r["status"] for r in runs] == ["completed"] * 4


class _Items(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        body = json.dumps({"items": [{"id": 1, "name": "a", "x": 0}, {"id": 2, "name": "b", "x": 0}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_init_etl_starter_fetches_transforms_and_validates(fm):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Items)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/data"
        res = fm("run", "-q", "--json", str(LEGACY / "init-etl.pipeline.json"), "--input", json.dumps({"source_url": url}))
    finally:
        server.shutdown()
        server.server_close()
    assert res.returncode == 0, res.stderr
    run = json.loads(res.stdout)
    assert run["output"]["valid"] is True
    # `{{fetch.output.body}}` fed the JMESPath `expression` the starter wrote; `{{transform.output.result}}` the check
    assert run["output"]["data"] == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
