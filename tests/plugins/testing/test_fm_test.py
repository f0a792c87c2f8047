"""`fm test` end to end: test files, cassettes recorded against a local model server, reports and coverage."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from flowmason.plugins.cassettes import close_cassettes

PIPELINE = {
    "name": "blog",
    "stages": [
        {"id": "draft", "component_type": "generator", "config": {"prompt": "Write about {{input.topic}}"}},
        {"id": "review", "component_type": "critic", "depends_on": ["draft"],
         "config": {"content": "{{upstream.draft.content}}"}},
        {"id": "off", "component_type": "generator", "enabled": False, "config": {"prompt": "unused"}},
        {"id": "never", "component_type": "generator", "depends_on": ["off"], "config": {"prompt": "x"}},
    ],
    "output_stage_id": "draft",
}


def responder(api, body):
    if "evaluator" in (body.get("system") or ""):
        return json.dumps({"feedback": "Good.", "score": 0.75})
    return "Owls: " + body["messages"][-1]["content"]


@pytest.fixture
def project(tmp_path, llm_env, monkeypatch):
    close_cassettes()
    llm_env.responder = responder
    (tmp_path / "blog.pipeline.json").write_text(json.dumps(PIPELINE))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_tests(folder, tests, **extra):
    doc = {"name": "blog tests", "pipeline": "blog.pipeline.json", "cassette": "blog.cassette.json", "tests": tests, **extra}
    (folder / "blog.test.json").write_text(json.dumps(doc))


def fm(*args):
    from flowmason.kernel import plugins
    from flowmason.kernel.cli import build_app

    plugins.reset()
    return CliRunner().invoke(build_app(), list(args))


GOOD = {
    "name": "owls",
    "input": {"topic": "owls"},
    "assertions": [
        {"path": "content", "type": "contains", "value": "owls"},
        {"path": "content", "type": "matches", "value": "^Owls: Write"},
        {"path": "model", "type": "equals", "value": "claude-sonnet-4-6"},
        {"stage": "review", "path": "score", "type": "range", "min": 0.5, "max": 1},
        {"stage": "review", "path": "feedback", "type": "equals", "value": "Good."},
        {"stage": "off", "type": "status", "value": "skipped"},
        {"type": "json-schema", "schema": {"type": "object", "required": ["content", "tokens_used"]}},
    ],
}


def test_record_then_replay_offline_with_reports(project, llm_env, monkeypatch):
    write_tests(project, [GOOD])
    result = fm("test", "--record")
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.output
    calls = len(llm_env.requests)
    assert calls == 2 and (project / "blog.cassette.json").exists()

    monkeypatch.delenv("ANTHROPIC_API_KEY")
    llm_env.stop()
    result = fm("test", "--junit", "reports/junit.xml", "--coverage", "cov.json")
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "1 passed" in result.output

    suite = ET.parse(project / "reports" / "junit.xml").getroot()
    assert suite.get("tests") == "1" and suite.get("failures") == "0"
    assert suite.find("testsuite/testcase").get("name") == "owls"

    cov = json.loads((project / "cov.json").read_text())
    stages = cov["pipelines"][str((project / "blog.pipeline.json").resolve())]["stages"]
    assert {sid: s["status"] for sid, s in stages.items()} == {
        "draft": "executed", "review": "executed", "off": "skipped", "never": "skipped"}
    assert cov["summary"]["coverage_percent"] == 50.0


def test_failures_are_reported_with_expected_and_actual(project):
    bad = {"name": "wrong", "input": {"topic": "bats"}, "assertions": [
        {"path": "content", "type": "equals", "value": "nope"},
        {"stage": "review", "path": "score", "type": "range", "max": 0.5},
        {"path": "missing.deep", "type": "exists"},
        {"path": "content", "type": "notContains", "value": "bats"},
    ]}
    write_tests(project, [GOOD, bad])
    fm("test", "--record")
    result = fm("test", "--junit", "j.xml")
    assert result.exit_code == 1
    out = result.output
    assert "FAIL   wrong" in out and "expected 'nope'" in out
    assert "is above 0.5" in out and "path 'missing.deep' not found" in out
    assert "1 passed, 1 failed" in out
    failure = ET.parse(project / "j.xml").getroot().find("testsuite/testcase[@name='wrong']/failure")
    assert failure is not None and "nope" in failure.text


def test_replay_miss_is_an_error_naming_the_stage(project):
    write_tests(project, [GOOD])
    fm("test", "--record")
    write_tests(project, [{**GOOD, "input": {"topic": "cats"}}])
    result = fm("test")
    assert result.exit_code == 1
    assert "ERROR" in result.output and "stage 'draft'" in result.output and "not in cassette" in result.output


def test_update_records_only_new_calls(project, llm_env):
    write_tests(project, [GOOD])
    fm("test", "--record")
    write_tests(project, [GOOD, {**GOOD, "name": "cats", "input": {"topic": "cats"}, "assertions": []}])
    result = fm("test", "--update")
    assert result.exit_code == 0, result.output
    assert len(llm_env.requests) == 4  # 2 recorded first, 2 new for "cats"; "owls" replayed
    assert len(json.loads((project / "blog.cassette.json").read_text())["interactions"]) == 4


def test_expect_error_skip_only_and_filter(project):
    fail_pipeline = {"name": "f", "stages": [{"id": "g", "component_type": "generator", "config": {"prompt": "x"},
                                              "provider": "nonesuch"}]}
    (project / "fail.pipeline.json").write_text(json.dumps(fail_pipeline))
    (project / "fail.test.json").write_text(json.dumps({"pipeline": "fail.pipeline.json", "tests": [
        {"name": "fails as expected", "expect_error": "unknown LLM provider",
         "assertions": [{"stage": "g", "type": "status", "value": "failed"}]},
        {"name": "wrongly expects success"},
        {"name": "skipped one", "skip": True},
    ]}))
    result = fm("test", "fail.test.json")
    assert result.exit_code == 1
    assert "PASS   fails as expected" in result.output
    assert "ERROR  wrongly expects success" in result.output and "SKIP   skipped one" in result.output
    result = fm("test", "fail.test.json", "-k", "as expected")
    assert result.exit_code == 0 and "1 passed, 0 failed, 0 errors, 0 skipped" in result.output


def test_bad_test_files_are_clear(project):
    (project / "broken.test.json").write_text('{"pipeline": "blog.pipeline.json", "tests": [')
    (project / "nopipe.test.json").write_text('{"tests": [{"name": "x"}]}')
    (project / "badtype.test.json").write_text(json.dumps({"pipeline": "blog.pipeline.json", "tests": [
        {"name": "x", "assertions": [{"type": "isAwesome"}]}]}))
    (project / "gone.test.json").write_text(json.dumps({"pipeline": "gone.pipeline.json", "tests": [{"name": "x"}]}))
    (project / "latin1.test.json").write_bytes(b'{"pipeline": "caf\xe9.pipeline.json", "tests": []}')
    result = fm("test")
    assert result.exit_code == 1
    out = result.output
    assert "malformed JSON at line 1" in out
    assert "'pipeline' (the path of the pipeline file) is missing" in out
    assert "unknown assertion type 'isAwesome'" in out and "json-schema" in out
    assert "file not found" in out
    assert "latin1.test.json is not UTF-8 text: byte 0xe9" in out and "Traceback" not in out


def test_no_test_files(project):
    result = fm("test", str(project / "blog.pipeline.json").replace("blog.pipeline.json", "empty_dir_does_not_exist"))
    assert result.exit_code != 0
    (project / "empty").mkdir()
    result = fm("test", "empty")
    assert result.exit_code == 2 and "no test files" in result.output


def test_foreach_iterations_fold_into_their_stage(project):
    doc = {"name": "loop", "stages": [
        {"id": "each", "component_type": "foreach", "config": {
            "items": "{{input.topics}}", "item_variable": "topic", "loop_stages": ["write"], "parallel": True}},
        {"id": "write", "component_type": "generator", "config": {"prompt": "About {{context.topic}}"}},
    ], "output_stage_id": "each"}
    (project / "loop.pipeline.json").write_text(json.dumps(doc))
    (project / "loop.test.json").write_text(json.dumps({"pipeline": "loop.pipeline.json", "cassette": "loop.cassette.json",
        "tests": [{"name": "two topics", "input": {"topics": ["owls", "bats"]}, "assertions": [
            {"stage": "write", "type": "status", "value": "completed"},
            {"stage": "write", "path": "content", "type": "matches", "value": "^Owls: About (owls|bats)$"}]}]}))
    assert fm("test", "loop.test.json", "--record").exit_code == 0
    result = fm("test", "loop.test.json", "--coverage", "c.json")
    assert result.exit_code == 0, result.output
    stages = json.loads((project / "c.json").read_text())["pipelines"][str((project / "loop.pipeline.json").resolve())]["stages"]
    assert stages["write"]["status"] == "executed" and stages["each"]["status"] == "executed"
