"""output-router and error-router delivering to webhooks on a real local HTTP server."""
from __future__ import annotations


def _hooks(server):
    server.json_route("POST", "/hook", {"ok": True})
    server.json_route("POST", "/broken", {"ok": False}, status=500)


def test_routes_payload_to_active_webhooks(ops, http_server):
    _hooks(http_server)
    base = http_server.base
    p = ops.pipeline(ops.stage("route", "output-router", data={"answer": "{{input.answer}}"}, metadata={"run": "r1"},
                               destinations=[
                                   {"id": "a", "name": "A", "type": "webhook", "config": {"url": "{{input.base}}/hook"}},
                                   {"id": "off", "type": "webhook", "enabled": False, "config": {"url": f"{base}/hook"}},
                                   {"id": "errs", "type": "webhook", "on_success": False, "on_error": True,
                                    "config": {"url": f"{base}/hook"}},
                               ]))
    out = ops.run(p, {"answer": 42, "base": base}).output
    assert (out["total_destinations"], out["successful_deliveries"], out["skipped_deliveries"]) == (3, 1, 2)
    assert out["all_succeeded"] is True
    assert out["results"][0]["destination_name"] == "A" and out["results"][0]["status_code"] == 200
    sent = [r.json() for r in http_server.requests]
    assert len(sent) == 1
    assert sent[0]["data"] == {"answer": 42} and sent[0]["metadata"] == {"run": "r1"} and sent[0]["is_error"] is False


def test_payload_template_uses_payload_names(ops, http_server):
    _hooks(http_server)
    dest = {"type": "webhook", "config": {"url": f"{http_server.base}/hook"},
            "payload_template": {"text": "Result for {{input.who}}: {{data.score}}", "raw": "{{data}}"}}
    ops.run(ops.pipeline(ops.stage("r", "output-router", data={"score": 7}, destinations=[dest])), {"who": "ada"})
    assert http_server.requests[-1].json() == {"text": "Result for ada: 7", "raw": {"score": 7}}


def test_failures_are_results_unless_fail_on_error(ops, http_server, closed_port):
    _hooks(http_server)
    dests = [
        {"id": "bad", "type": "webhook", "config": {"url": f"{http_server.base}/broken"}},
        {"id": "down", "type": "webhook",
         "config": {"url": f"http://127.0.0.1:{closed_port}/x?key=k3y", "retry_count": 1, "retry_delay_ms": 1}},
        {"id": "mail", "type": "email", "config": {"to": ["a@example.org"]}},
    ]
    out = ops.run_one("output-router", data=1, destinations=dests)
    by_id = {r["destination_id"]: r for r in out["results"]}
    assert out["failed_deliveries"] == 3 and out["all_succeeded"] is False
    assert by_id["bad"]["status_code"] == 500 and by_id["bad"]["success"] is False
    assert f"127.0.0.1:{closed_port}/x failed after 2 attempt(s)" in by_id["down"]["error"]
    assert "k3y" not in by_id["down"]["error"]
    assert "not supported" in by_id["mail"]["error"]
    err, _ = ops.fails(ops.pipeline(ops.stage("r", "output-router", data=1, destinations=dests[:1], fail_on_error=True)))
    assert (err.stage, err.field) == ("r", "config.destinations") and "bad: 500" in err.message


def test_bad_destinations_name_the_field(ops):
    problems = ops.invalid(ops.pipeline(ops.stage("r", "output-router", destinations=[{"type": "pigeon"}]),
                                        ops.stage("s", "output-router")))
    assert {(e.stage, e.field) for e in problems} == {("r", "config.destinations"), ("s", "config.destinations")}
    err, _ = ops.fails(ops.pipeline(ops.stage("r", "output-router", destinations="{{input.d}}")), {"d": [{"type": 3}]})
    assert (err.stage, err.field) == ("r", "config.destinations[0]")


def test_error_router_sends_the_error(ops, http_server):
    _hooks(http_server)
    p = ops.pipeline(ops.stage("alert", "error-router", error_type="TIMEOUT", error_message="upstream slow",
                               stage_id="fetch", severity="warning",
                               destinations=[{"type": "webhook", "config": {"url": f"{http_server.base}/hook"}}]))
    run = ops.run(p)
    assert run.output["notifications_sent"] == 1 and run.output["failed_notifications"] == 0
    sent = http_server.requests[-1].json()
    assert sent["is_error"] is True and sent["metadata"] == {"severity": "warning"}
    assert sent["data"]["error_type"] == "TIMEOUT" and sent["data"]["stage_id"] == "fetch"
    assert sent["data"]["pipeline_id"] == "ops-test" and sent["data"]["run_id"] == run.id
