"""variable-set, variable-get, logger and delay through the engine."""
from __future__ import annotations

from flowmason.kernel.errors import StageError


def test_variables_object_then_template_and_get(ops):
    p = ops.pipeline(
        ops.stage("set-vars", "variable-set", variables={"total": "{{len(input.docs)}}", "first": "{{input.docs[0]}}"}),
        ops.stage("use", "json-transform", ["set-vars"],
                  template={"t": "{{variables.total}}", "via_upstream": "{{upstream.set-vars.variables.first}}"}),
        ops.stage("get", "variable-get", ["use"], names=["total", "first"]),
    )
    run = ops.run(p, {"docs": ["a", "b"]})
    assert run.output == {"variables": {"total": 2, "first": "a"}, "missing": []}


def test_name_value_with_extract_path_and_overwrite(ops):
    p = ops.pipeline(
        ops.stage("one", "variable-set", name="token", value={"resp": {"items": [{"id": "x1"}]}},
                  extract_path="resp.items[0].id"),
        ops.stage("two", "variable-set", ["one"], name="token", value="x2", overwrite=False),
        ops.stage("three", "variable-set", ["two"], name="token", value="x3"),
    )
    outs = {}
    ops.run(p, listeners=[lambda kind, run, stage, data: kind == "stage.finished" and outs.update({stage.id: data.output})])
    assert outs["one"]["value"] == "x1" and outs["one"]["previous_value"] is None and outs["one"]["was_set"] is True
    assert outs["two"] == {"variables": {"token": "x1"}, "previous": {"token": "x1"}, "was_set": False,
                           "name": "token", "value": "x1", "previous_value": "x1"}
    assert outs["three"]["value"] == "x3" and outs["three"]["previous_value"] == "x1"


def test_variables_are_per_run(ops):
    setter = ops.pipeline(ops.stage("s", "variable-set", name="n", value="{{input.n}}"),
                          ops.stage("g", "variable-get", ["s"], name="n"))
    assert ops.run(setter, {"n": 1}).output["value"] == 1
    getter = ops.pipeline(ops.stage("g", "variable-get", name="n", default="none"))
    assert ops.run(getter).output == {"name": "n", "value": "none", "found": False}


def test_get_unset_variable_says_how_to_fix(ops):
    p = ops.pipeline(ops.stage("s", "variable-set", name="a", value=1), ops.stage("g", "variable-get", name="b"))
    err, _ = ops.fails(p)
    assert isinstance(err, StageError) and (err.stage, err.field) == ("g", "config.name")
    assert "not set: b" in err.message and "depend on the variable-set stage" in err.hint


def test_bad_variable_names_fail_validation(ops):
    p = ops.pipeline(ops.stage("s", "variable-set", name="1abc", value=1),
                     ops.stage("t", "variable-set", variables={"ok": 1, "not ok": 2}),
                     ops.stage("u", "variable-set"))
    problems = {(e.stage, e.field) for e in ops.invalid(p)}
    assert problems == {("s", "config.name"), ("t", "config.variables")}
    err, _ = ops.fails(ops.pipeline(ops.stage("u", "variable-set")))
    assert (err.stage, err.field) == ("u", "config.variables")


def test_logger_logs_through_the_run_and_returns_it(ops):
    seen = []
    p = ops.pipeline(ops.stage("log", "logger", message="hello {{input.who}}", level="warn",
                               data={"n": "{{input.n}}"}, tags={"area": "test"}, passthrough="{{input.n}}"))
    run = ops.run(p, {"who": "ada", "n": 4}, listeners=[lambda k, r, s, d: k == "stage.log" and seen.append(d)])
    assert seen == [{"level": "warning", "message": "hello ada",
                     "data": {"log_id": run.output["log_id"], "data": {"n": 4}, "tags": {"area": "test"}}}]
    assert run.output["message"] == "hello ada" and run.output["level"] == "warning"
    assert run.output["passthrough"] == 4 and run.output["data"] == {"n": 4}


def test_logger_level_checked_static_and_rendered(ops):
    problems = ops.invalid(ops.pipeline(ops.stage("l", "logger", message="x", level="loud"), ops.stage("m", "logger")))
    assert {(e.stage, e.field) for e in problems} == {("l", "config.level"), ("m", "config.message")}
    err, _ = ops.fails(ops.pipeline(ops.stage("l", "logger", message="x", level="{{input.lvl}}")), {"lvl": "loud"})
    assert (err.stage, err.field) == ("l", "config.level")


def test_delay_passes_data_on(ops):
    out = ops.run_one("delay", ms=5, passthrough={"k": 1})
    assert out == {"waited_ms": 5.0, "passthrough": {"k": 1}}
    assert ops.run_one("delay", seconds=0.001)["waited_ms"] == 1.0
    problems = ops.invalid(ops.pipeline(ops.stage("d", "delay", ms=-1)))
    assert [(e.stage, e.field) for e in problems] == [("d", "config.ms")]
