"""AI nodes in real pipelines, calling the providers against a local model server."""
from __future__ import annotations

import asyncio
import json

import pytest

from flowmason.kernel.errors import FlowMasonError
from flowmason.kernel.executor import run_pipeline
from flowmason.kernel.model import RunStatus, parse_pipeline
from flowmason.plugins.cassettes import close_cassettes, use_cassette


def run(doc: dict, inputs: dict | None = None, listeners=None, recorder=None):
    pipeline = parse_pipeline(doc)

    async def go():
        return await run_pipeline(pipeline, inputs or {}, listeners=listeners, recorder=recorder)

    return asyncio.run(go())


def run_failing(doc: dict, inputs: dict | None = None, recorder=None) -> FlowMasonError:
    with pytest.raises(FlowMasonError) as info:
        run(doc, inputs, recorder=recorder)
    return info.value


def system_of(body: dict) -> str:
    if "system" in body:
        return body["system"]
    return next((m["content"] for m in body.get("messages", []) if m["role"] == "system"), "")


def pipe(*stages: dict, **extra) -> dict:
    return {"name": "p", "stages": list(stages), **extra}


GEN = {"id": "draft", "component_type": "generator", "config": {"prompt": "Write about {{input.topic}}",
                                                                  "system_prompt": "Be brief."}}


def test_generator_output_usage_and_template(llm_env):
    r = run(pipe(GEN), {"topic": "owls"})
    assert r.status is RunStatus.COMPLETED
    out = r.output
    assert out["content"] == "Echo: Write about owls"
    assert out["model"] == "claude-sonnet-4-6" and out["provider"] == "anthropic"
    assert out["tokens_used"] > 0 and out["finish_reason"] == "end_turn"
    _, _, body = llm_env.requests[-1]
    assert body["system"] == "Be brief." and body["max_tokens"] == 4096
    assert r.usage["calls"] == 1 and r.usage["output_tokens"] == 4 and r.usage["cost_usd"] == 0.0  # a model on loopback costs nothing


def test_tokens_stream_to_listeners(llm_env):
    events = []
    r = run(pipe(GEN), {"topic": "owls"}, listeners=[lambda kind, run_, stage, data: events.append((kind, stage, data))])
    tokens = [(s.id, d) for k, s, d in events if k == "stage.token"]
    assert tokens and all(sid == "draft" for sid, _ in tokens)
    assert "".join(d for _, d in tokens) == r.output["content"]
    assert llm_env.requests[-1][2]["stream"] is True
    finished = [d for k, s, d in events if k == "stage.finished"]
    assert finished[0].usage["calls"] == 1 and finished[0].usage["model"] == "claude-sonnet-4-6"


def test_provider_and_model_per_stage_pipeline_and_env(llm_env, monkeypatch):
    llm_env.api_key = None
    doc = pipe(
        {"id": "a", "component_type": "generator", "config": {"prompt": "x"}},
        {"id": "b", "component_type": "generator", "config": {"prompt": "y"}, "provider": "ollama", "model": "qwen3"},
        {"id": "c", "component_type": "generator", "config": {"prompt": "z"}, "provider": "openai",
         "llm_settings": {"temperature": 0.1, "max_tokens": 77}},
        metadata={"default_provider": "llamacpp", "default_model": "local-gguf"},
    )
    run(doc)
    seen = {body["messages"][-1]["content"]: (path, body) for path, _, body in llm_env.requests}
    assert seen["x"][0] == "/v1/chat/completions" and seen["x"][1]["model"] == "local-gguf"  # pipeline default
    assert seen["y"][0] == "/api/chat" and seen["y"][1]["model"] == "qwen3"  # stage's own
    assert seen["z"][1]["model"] == "gpt-4o-mini"  # pipeline default_model is for the default provider only
    assert seen["z"][1]["temperature"] == 0.1 and seen["z"][1]["max_tokens"] == 77

    llm_env.requests.clear()
    monkeypatch.setenv("FM_PROVIDER", "ollama")
    monkeypatch.setenv("FM_MODEL", "phi4")
    run(pipe({"id": "a", "component_type": "generator", "config": {"prompt": "x"}}))
    path, _, body = llm_env.requests[-1]
    assert path == "/api/chat" and body["model"] == "phi4"


def test_output_schema_valid_first_time(llm_env):
    llm_env.responder = lambda api, body: 'Here it is:\n```json\n{"title": "Owls", "words": 3}\n```'
    schema = {"type": "object", "required": ["title", "words"],
              "properties": {"title": {"type": "string"}, "words": {"type": "integer"}}}
    r = run(pipe({**GEN, "config": {"prompt": "p", "output_schema": schema}}))
    assert r.output["data"] == {"title": "Owls", "words": 3}
    assert len(llm_env.requests) == 1
    assert '"required"' in llm_env.requests[0][2]["system"]  # the schema went into the system prompt


def test_output_schema_repaired_once_with_the_validation_error(llm_env):
    replies = iter(['{"title": 5}', '{"title": "Owls"}'])
    llm_env.responder = lambda api, body: next(replies)
    schema = {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}}
    r = run(pipe({**GEN, "config": {"prompt": "p", "output_schema": schema}}))
    assert r.output["data"] == {"title": "Owls"}
    assert r.usage["calls"] == 2
    repair = llm_env.requests[1][2]["messages"]
    assert [m["role"] for m in repair] == ["user", "assistant", "user"]
    assert repair[1]["content"] == '{"title": 5}'
    assert "title" in repair[2]["content"] and "string" in repair[2]["content"]


def test_invalid_json_twice_fails_the_stage_and_the_run_is_recorded_failed(llm_env, tmp_path):
    from flowmason.kernel.runs import RunRepository
    from flowmason.kernel.storage import open_store

    llm_env.responder = lambda api, body: "sorry, no JSON today"
    repo = RunRepository(open_store(str(tmp_path / "runs.db")))
    schema = {"type": "object", "required": ["title"]}
    err = run_failing(pipe({**GEN, "config": {"prompt": "p", "output_schema": schema}}), recorder=repo)
    assert err.stage == "draft" and err.field == "config.output_schema"
    assert "invalid JSON twice" in err.message
    assert len(llm_env.requests) == 2  # one call, one repair, no more
    [summary], _ = repo.list_runs()
    stored = repo.get_run(summary["id"])
    assert stored.status is RunStatus.FAILED and stored.error["stage"] == "draft"
    [result] = repo.stage_results(stored.id)
    assert result.status.value == "failed" and result.usage["calls"] == 2  # both calls counted


def test_missing_key_unknown_provider_and_down_provider_name_the_stage(llm_env, monkeypatch, retry_delays):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    err = run_failing(pipe(GEN), {"topic": "t"})
    assert err.stage == "draft" and "ANTHROPIC_API_KEY" in str(err)

    err = run_failing(pipe({**GEN, "provider": "nonesuch"}), {"topic": "t"})
    assert err.stage == "draft" and "unknown LLM provider 'nonesuch'" in err.message

    monkeypatch.setenv("FM_LLM_MAX_RETRIES", "1")
    llm_env.stop()
    err = run_failing(pipe({**GEN, "provider": "openai"}), {"topic": "t"})
    assert err.stage == "draft" and "not reachable" in err.message and len(retry_delays) == 1


def test_critic_improver_selector_synthesizer_fields(llm_env):
    def responder(api, body):
        system = system_of(body)
        if "content evaluator" in system:
            return json.dumps({"overall_rating": "good", "score": 0.8, "feedback": "Add a fact.",
                               "improvements": ["facts"]})
        if "expert editor" in system:
            return json.dumps({"improved_content": "Owls hunt at night.", "changes_made": ["added a fact"]})
        if "choosing among candidates" in system:
            return json.dumps({"selected_index": 1, "explanation": "more facts", "confidence": 0.9})
        if "synthesizing" in system:
            return json.dumps({"synthesized": "All about owls.", "key_themes": ["night"]})
        return "Owls are birds."

    llm_env.responder = responder
    doc = pipe(
        GEN,
        {"id": "review", "component_type": "critic", "depends_on": ["draft"],
         "config": {"content": "{{upstream.draft.content}}", "criteria": ["accuracy", "tone"],
                    "rubric": {"accuracy": "facts are right"}, "threshold": 0.9}},
        {"id": "fix", "component_type": "improver", "depends_on": ["review"],
         "config": {"content": "{{upstream.draft.content}}", "feedback": "{{upstream.review.feedback}}",
                    "instructions": "Keep it short."}},
        {"id": "pick", "component_type": "selector", "depends_on": ["fix"],
         "config": {"options": [{"label": "Draft", "content": "{{upstream.draft.content}}"}, "{{upstream.fix.improved}}"],
                    "criteria": "most informative"}},
        {"id": "merge", "component_type": "synthesizer", "depends_on": ["pick"],
         "config": {"sources": [{"label": "Pick", "content": "{{upstream.pick.selected}}"}, "{{upstream.pick.reasoning}}"],
                    "synthesis_strategy": "summarize"}},
        output_stage_id="merge",
    )
    events = []
    r = run(doc, {"topic": "owls"}, listeners=[lambda k, run_, s, d: events.append((k, s, d))])
    outs = {s.id: d.output for k, s, d in events if k == "stage.finished"}
    assert outs["review"]["feedback"] == "Add a fact." and outs["review"]["score"] == 0.8
    assert outs["review"]["passes_threshold"] is False  # 0.8 < threshold 0.9
    assert outs["fix"]["improved"] == outs["fix"]["content"] == outs["fix"]["improved_content"] == "Owls hunt at night."
    assert outs["pick"]["selected"] == "Owls hunt at night." and outs["pick"]["selected_index"] == 1
    assert outs["pick"]["reasoning"] == "more facts" and outs["pick"]["selected_label"] is None
    assert r.output["synthesized"] == r.output["content"] == "All about owls."
    assert r.output["sources_used"] == 2 and r.output["strategy_applied"] == "summarize"
    prompts = {system_of(b)[:20]: b["messages"][-1]["content"] for _, _, b in llm_env.requests}
    critic_prompt = next(v for k, v in prompts.items() if k.startswith("You are an expert co"))
    assert "Owls are birds." in critic_prompt and "- accuracy: facts are right" in critic_prompt
    assert r.usage["calls"] == 5


def test_builtin_shape_falls_back_to_text_after_a_failed_repair(llm_env):
    llm_env.responder = lambda api, body: "Plain words, no JSON."
    r = run(pipe({"id": "review", "component_type": "critic", "config": {"content": "text"}}))
    assert r.output["feedback"] == "Plain words, no JSON." and r.usage["calls"] == 2


def test_missing_prompt_and_empty_candidates_are_config_errors(llm_env):
    err = run_failing(pipe({"id": "g", "component_type": "generator", "config": {"prompt": "{{input.missing}}"}}))
    assert err.stage == "g"
    err = run_failing(pipe({"id": "s", "component_type": "selector", "config": {"candidates": []}}))
    assert err.stage == "s" and err.field == "config.candidates"
    assert llm_env.requests == []


def test_pipeline_replays_from_a_cassette_without_the_server(llm_env, tmp_path):
    close_cassettes()
    path = tmp_path / "run.cassette.json"
    doc = pipe(GEN, {"id": "review", "component_type": "critic", "depends_on": ["draft"],
                     "config": {"content": "{{upstream.draft.content}}"}})
    llm_env.responder = lambda api, body: ('{"feedback": "fine", "score": 1}' if "evaluator" in system_of(body)
                                           else "Owls!")
    with use_cassette(path, "record"):
        first = run(doc, {"topic": "owls"})
    llm_env.stop()
    with use_cassette(path, "replay"):
        again = run(doc, {"topic": "owls"})
    assert again.output == first.output and again.usage == first.usage
    with use_cassette(path, "replay"):
        err = run_failing(doc, {"topic": "bats"})
    assert err.stage == "draft" and "not in cassette" in err.message


def test_a_key_in_the_pipeline_file_is_refused_without_echoing_it(llm_env):
    err = run_failing(pipe({**GEN, "llm_settings": {"api_key": "sk-live-secret"}}), {"topic": "t"})
    assert err.stage == "draft" and err.field == "llm_settings.api_key"
    assert "sk-live-secret" not in str(err) and "ANTHROPIC_API_KEY" in err.hint
    assert llm_env.requests == []
