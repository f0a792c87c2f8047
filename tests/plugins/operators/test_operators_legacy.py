"""The earlier product's template files load, validate and run unchanged (operators and control flow)."""
from __future__ import annotations

from pathlib import Path

import pytest

from flowmason.kernel import plugins
from flowmason.kernel.model import load_pipeline, parse_pipeline
from flowmason.kernel.plan import compile_plan

LEGACY = Path(__file__).parents[2] / "fixtures" / "legacy"
FILES = sorted(LEGACY.glob("devops-*.json"))  # the rest run through `fm run` (tests/plugins/core_cli)


def test_fixtures_are_present():
    assert [f.name for f in FILES] == ["devops-cicd-deployment.json", "devops-health-monitor.json",
                                       "devops-incident-response.json"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_loads_and_validates(path):
    p = load_pipeline(path)
    assert p.stages and p.output_stage_id in p.stage_map()
    plan = compile_plan(p, plugins.get_registry().components)
    assert set(plan.stages) == set(p.stage_map())


def _serve_cicd(server):
    server.json_route("POST", "/ci/builds", {"build_id": "b-7"})
    server.json_route("GET", "/ci/builds/b-7/status", {"status": "success", "tests_passed": True})
    server.json_route("POST", "/deploy/deployments", {"deployment": "ok"})
    server.json_route("GET", "/staging/user-api/health", {"healthy": True})
    server.json_route("POST", "/tests/tests/smoke", {"passed": True, "failures": 0, "total": 12})
    server.json_route("GET", "/prod/user-api/health", {"healthy": True})
    server.json_route("POST", "/slack", {"ok": True})


def test_cicd_template_runs_against_local_services(ops, http_server, monkeypatch):
    base = http_server.base
    env = {"CI_TOKEN": "ci-tok", "DEPLOY_API": f"{base}/deploy", "DEPLOY_TOKEN": "dep-tok",
           "STAGING_URL": f"{base}/staging", "TEST_TOKEN": "t-tok", "PROD_URL": f"{base}/prod",
           "SLACK_WEBHOOK": f"{base}/slack"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("FM_ENV_ALLOWLIST", ",".join(env))
    _serve_cicd(http_server)
    p = load_pipeline(LEGACY / "devops-cicd-deployment.json")
    inputs = {**p.example_input, "ci_api_url": f"{base}/ci", "test_api_url": f"{base}/tests",
              "artifact_url": "https://ghcr.io/myorg/user-api:v2.1.0"}
    run = ops.run(p, inputs)
    out = run.output
    assert out["status"] == "success" and out["service"] == "user-api" and out["build_id"] == "b-7"
    assert out["test_results"] == {"passed": True, "total_tests": 12}
    paths = [(r.method, r.path) for r in http_server.requests]
    assert paths == [("POST", "/ci/builds"), ("GET", "/ci/builds/b-7/status"), ("POST", "/deploy/deployments"),
                     ("GET", "/staging/user-api/health"), ("POST", "/tests/tests/smoke"),
                     ("POST", "/deploy/deployments"), ("GET", "/prod/user-api/health"), ("POST", "/slack")]
    first = http_server.requests[0]
    assert first.headers["authorization"] == "Bearer ci-tok"
    assert first.json() == {"repository": "myorg/user-api", "branch": "main", "version": "v2.1.0",
                            "artifact_url": "https://ghcr.io/myorg/user-api:v2.1.0"}
    assert http_server.requests[-1].json()["blocks"][1]["fields"][0]["text"] == "*Service:*\nuser-api"


def test_cicd_template_rejects_a_bad_version_before_calling_anything(ops, http_server, monkeypatch):
    monkeypatch.setenv("FM_ENV_ALLOWLIST", "CI_TOKEN")
    monkeypatch.setenv("CI_TOKEN", "x")
    p = load_pipeline(LEGACY / "devops-cicd-deployment.json")
    inputs = {**p.example_input, "ci_api_url": f"{http_server.base}/ci", "version": "latest"}
    err, _ = ops.fails(p, inputs)
    assert err.stage == "validate-input" and "version" in err.message
    assert http_server.requests == []


def test_health_monitor_fan_out_runs(ops, http_server):
    """The operator and control-flow part of the health monitor: foreach over services, http, aggregate."""
    http_server.json_route("GET", "/users/health", {"ok": True})
    http_server.json_route("GET", "/orders/health", {"ok": False}, status=503)
    data = load_pipeline(LEGACY / "devops-health-monitor.json").model_dump(exclude_none=True)
    keep = {"log-check-start", "check-all-services", "health-check", "evaluate-health", "aggregate-results",
            "check-alert-needed", "determine-severity"}
    data["stages"] = [s for s in data["stages"] if s["id"] in keep]
    data["output_stage_id"] = "determine-severity"
    p = parse_pipeline(data)
    services = [{"name": "users", "url": f"{http_server.base}/users"}, {"name": "orders", "url": f"{http_server.base}/orders"}]
    outputs = {}
    run = ops.run(p, {"services": services},
                  listeners=[lambda k, r, s, d: k == "stage.finished" and d.iteration is None and outputs.update({s.id: d.output})])
    agg = outputs["aggregate-results"]
    assert (agg["total_services"], agg["healthy_count"], agg["unhealthy_count"]) == (2, 1, 1)
    assert [s["service_name"] for s in agg["unhealthy_services"]] == ["orders"]
    assert outputs["check-alert-needed"]["passed"] is True
    assert run.output == {"severity": "medium", "unhealthy_count": 1, "unhealthy_services": agg["unhealthy_services"]}
