"""The executor: ordering, concurrency, timeouts, retries, error policies, cancellation, events, resume."""
from __future__ import annotations

import asyncio

import pytest

from flowmason.kernel.errors import RunCancelledError, StageError, StageTimeoutError
from flowmason.kernel.executor import Execution, plan_for
from flowmason.kernel.model import RunStatus, StageStatus

from tests.kernel.helpers import P, S, run




def test_dependencies_order_and_upstream_values(probe):
    p = P(S("a", value="{{input.x}}"), S("b", deps=["a"], value="{{upstream.a.value}}!"),
          S("c", deps=["b"], value="{{upstream.b.value}}?"))
    r = run(p, {"x": "hi"})
    assert r.status is RunStatus.COMPLETED
    assert r.output == {"value": "hi!?", "stage": "c"}


def test_whole_template_keeps_type_and_sinks_make_output(probe):
    p = P(S("a", value="{{input.items}}"), S("b", value={"n": "{{len(input.items)}}", "s": "n={{len(input.items)}}"}))
    r = run(p, {"items": [1, 2, 3]})
    assert r.output["a"]["value"] == [1, 2, 3]
    assert r.output["b"]["value"] == {"n": 3, "s": "n=3"}


def test_parallel_stages_overlap_and_concurrency_limit(probe):
    stages = [S("root")] + [S(f"s{i}", "t-sleep", deps=["root"], seconds=0.05) for i in range(10)]
    run(P(*stages))
    assert probe.max_running == 10
    probe.max_running = 0
    plan = plan_for(P(*stages, id="p2"))
    asyncio.run(Execution(plan, {}, max_concurrency=3).execute())
    assert probe.max_running == 3


def test_timeout_fails_stage_and_names_it(probe, repo):
    p = P({"id": "slow", "component_type": "t-sleep", "config": {"seconds": 5}, "timeout_ms": 50})
    with pytest.raises(StageTimeoutError) as ei:
        run(p, recorder=repo)
    assert ei.value.stage == "slow" and ei.value.field == "timeout_ms"
    runs, _ = repo.list_runs()
    assert runs[0]["status"] == "failed"
    assert repo.stage_results(runs[0]["id"])[0].status is StageStatus.FAILED


def test_retries_with_backoff_then_success(probe):
    p = P({"id": "flaky", "component_type": "t-fail", "config": {"fail_times": 2},
           "retry_config": {"max_retries": 3, "initial_delay_ms": 1, "max_delay_ms": 5}})
    r = run(p)
    assert r.output == {"attempt": 3}
    assert probe.calls["flaky"] == 3


def test_retries_are_bounded(probe):
    p = P({"id": "bad", "component_type": "t-fail", "config": {},
           "retry_config": {"max_retries": 2, "initial_delay_ms": 1}})
    with pytest.raises(StageError, match="boom"):
        run(p)
    assert probe.calls["bad"] == 3


def test_failure_stops_run_and_records_error(probe, repo):
    p = P(S("a"), S("b", "t-fail", deps=["a"], message="kaput"), S("c", deps=["b"]))
    with pytest.raises(StageError) as ei:
        run(p, recorder=repo)
    assert ei.value.stage == "b" and "kaput" in str(ei.value)
    assert probe.calls["c"] == 0
    (summary,), _ = repo.list_runs()
    stored = repo.get_run(summary["id"])
    assert stored.status is RunStatus.FAILED and stored.error["stage"] == "b"
    statuses = {s.stage_id: s.status for s in repo.stage_results(stored.id)}
    assert statuses == {"a": StageStatus.COMPLETED, "b": StageStatus.FAILED}


def test_on_error_continue_uses_fallback(probe):
    p = P({"id": "b", "component_type": "t-fail", "on_error": "continue", "fallback_output": {"value": "fb"}},
          S("c", deps=["b"], value="{{upstream.b.value}}"))
    r = run(p)
    assert r.status is RunStatus.COMPLETED and r.output["value"] == "fb"


def test_on_error_skip_skips_dependents(probe):
    p = P({"id": "b", "component_type": "t-fail", "error_handling": "skip"}, S("c", deps=["b"]), S("d"))
    r = run(p)
    assert r.status is RunStatus.COMPLETED
    assert probe.calls["c"] == 0 and ("skipped", "c") in probe.events


def test_disabled_stage_is_skipped(probe):
    p = P({"id": "a", "component_type": "t-echo", "enabled": False}, S("b", deps=["a"]))
    run(p)
    assert probe.calls["a"] == 0 and probe.calls["b"] == 0


def test_events_reach_plugins(probe):
    run(P(S("a"), S("b", deps=["a"])))
    assert probe.events == [("finished", "a"), ("finished", "b"), ("run", "completed")]


def test_cancellation_records_cancelled(probe, repo):
    p = P(S("a", "t-sleep", seconds=10))
    plan = plan_for(p)

    async def go():
        ex = Execution(plan, {}, recorder=repo)
        task = asyncio.ensure_future(ex.execute())
        await asyncio.sleep(0.05)
        ex.cancel()
        with pytest.raises(RunCancelledError):
            await task
        return ex.run

    r = asyncio.run(go())
    assert r.status is RunStatus.CANCELLED
    assert repo.get_run(r.id).status is RunStatus.CANCELLED


def test_resume_skips_finished_stages(probe, repo):
    p = P(S("a", value=1), S("b", "t-fail", deps=["a"], fail_times=1), S("c", deps=["b"], value="{{upstream.a.value}}"))
    with pytest.raises(StageError):
        run(p, recorder=repo)
    (summary,), _ = repo.list_runs()
    first = repo.get_run(summary["id"])
    checkpoint = repo.checkpoint(first.id)
    assert set(checkpoint) == {"a", "b"}
    # resume keeps 'a' (completed) and re-runs the failed 'b'
    checkpoint = {k: v for k, v in checkpoint.items() if v.status is StageStatus.COMPLETED}
    r = run(p, recorder=repo, run=first, resume=checkpoint)
    assert r.status is RunStatus.COMPLETED and r.output["value"] == 1
    assert probe.calls["a"] == 1 and probe.calls["b"] == 2


def test_template_error_names_stage_and_field(probe):
    p = P(S("a", value="{{nosuchroot.x}}"))
    with pytest.raises(Exception) as ei:
        run(p)
    assert getattr(ei.value, "stage", None) == "a" and "nosuchroot" in str(ei.value)


def test_missing_input_is_recorded_as_failed(probe, repo):
    p = P(S("a"), input_schema={"type": "object", "required": ["topic"], "properties": {"topic": {"type": "string"}}})
    with pytest.raises(Exception, match="topic"):
        run(p, {}, recorder=repo)
    (summary,), _ = repo.list_runs()
    assert summary["status"] == "failed" and "topic" in summary["error"]["message"]
    assert repo.stage_results(summary["id"]) == []


def test_secrets_never_reach_the_record(probe, repo, monkeypatch):
    monkeypatch.setenv("FM_ENV_ALLOWLIST", "SVC_TOKEN")
    monkeypatch.setenv("SVC_TOKEN", "tok-123456789")
    p = P(S("a", value="Bearer {{env.SVC_TOKEN}}", headers={"Authorization": "Bearer x", "Accept": "json"}))
    r = run(p, recorder=repo)
    assert r.output["value"] == "Bearer tok-123456789"  # the component saw the real value
    (stage,) = repo.stage_results(r.id)
    assert stage.input == {"value": "Bearer ***", "headers": {"Authorization": "***", "Accept": "json"}}
    assert "tok-123456789" not in repo.get_run(r.id).model_dump_json()


@pytest.mark.parametrize("url, shown", [
    ("http://user:URLPASS@svc.example/p?api_key=QSECRET&page=2", "http://user:***@svc.example/p?api_key=***&page=2"),
    ("https://svc.example/x?token=QSECRET&sig=QSECRET2&X-Amz-Signature=QSECRET3&monkey=ok",
     "https://svc.example/x?token=***&sig=***&X-Amz-Signature=***&monkey=ok"),
])
def test_url_passwords_and_query_secrets_never_reach_the_record(probe, repo, url, shown):
    # the URL arrives through a template, so the plan cannot see it: the key name `url` marks the stage
    p = P(S("a", url="{{input.url}}", value="{{input.url}}"))
    r = run(p, {"url": url}, recorder=repo)
    assert r.output["value"] == url  # the component and the caller get the real URL
    (stage,) = repo.stage_results(r.id)
    assert stage.input == {"url": shown, "value": shown} and stage.output["value"] == shown
    recorded = repo.get_run(r.id)
    assert recorded.output["value"] == shown
    # the run's own inputs stay as given: a resumed or replayed run needs them
    assert "URLPASS" not in stage.model_dump_json() and "QSECRET" not in stage.model_dump_json()


def test_legacy_retry_policy_retries(probe):
    p = P({"id": "flaky", "component_type": "t-fail", "config": {"fail_times": 1},
           "error_handling": {"on_error": "retry", "max_retries": 2, "retry_delay": 1}})
    assert run(p).output == {"attempt": 2}


def test_large_fan_out_completes_every_stage(probe):
    stages = [S("root")] + [S(f"s{i}", "t-sleep", deps=["root"], seconds=0.001) for i in range(2000)]
    stages.append(S("join", deps=[f"s{i}" for i in range(2000)], value="done"))
    r = run(P(*stages))
    assert r.output["value"] == "done" and sum(probe.calls.values()) == 2002

