"""json-transform, filter, loop, schema-validate, merge and text-template through the engine."""
from __future__ import annotations

import pytest

from flowmason.kernel.errors import ConfigError, StageError

# ------------------------------------------------------------- json-transform


def test_template_sees_data_and_keeps_types(ops):
    out = ops.run_one("json-transform", {"rows": [{"n": 1}, {"n": 5}, {"n": 7}]},
                      data="{{input.rows}}",
                      template={"big": "{{[r for r in data if r['n'] > 2]}}", "count": "{{len(data)}}",
                                "label": "rows: {{len(data)}}", "fixed": [1, "two"]})
    assert out == {"big": [{"n": 5}, {"n": 7}], "count": 3, "label": "rows: 3", "fixed": [1, "two"]}


def test_template_without_data_reads_upstream_like_the_shipped_templates(ops):
    p = ops.pipeline(
        ops.stage("ingest", "json-transform", template={"name": "{{input.name}}", "channel": "{{input.channel or 'web'}}"}),
        ops.stage("ticket", "json-transform", ["ingest"], template={"ticket": {"who": "{{upstream.ingest.name}}",
                                                                            "via": "{{upstream.ingest.channel}}"}}),
    )
    assert ops.run(p, {"name": "Ada"}).output == {"ticket": {"who": "Ada", "via": "web"}}


def test_model_json_in_a_code_block_is_parsed(ops):
    text = 'Here you go:\n```json\n{"score": 0.9, "tags": ["a"]}\n```\nthanks'
    assert ops.run_one("json-transform", data=text, template="{{data.score}}") == 0.9
    prose = 'The answer is {"ok": true} as requested.'
    assert ops.run_one("json-transform", data=prose)["result"] == {"ok": True}
    assert ops.run_one("json-transform", data="not json", parse_json_strings=False)["result"] == "not json"


def test_mapping_defaults_and_exclude(ops):
    data = {"user": {"name": "Ada", "emails": ["a@x.org"]}}
    out = ops.run_one("json-transform", data=data,
                      mapping={"name": "user.name", "email": "user.emails[0]", "phone": "user.phone", "gone": "user.name"},
                      defaults={"phone": "n/a"}, exclude_fields=["gone"])
    assert out == {"result": {"name": "Ada", "email": "a@x.org", "phone": "n/a"}, "fields_mapped": 4,
                   "fields_missing": ["phone"]}


def test_jmespath_and_flatten(ops):
    data = {"people": [{"name": "a", "age": 30}, {"name": "b", "age": 12}]}
    out = ops.run_one("json-transform", data=data, jmespath_expression="people[?age > `18`].name")
    assert out["result"] == ["a"]
    flat = ops.run_one("json-transform", data={"a": {"b": 1, "c": [2, {"d": 3}]}}, flatten=True)
    assert flat["result"] == {"a.b": 1, "a.c[0]": 2, "a.c[1].d": 3}


def test_bad_jmespath_names_the_field(ops):
    err, _ = ops.fails(ops.pipeline(ops.stage("t", "json-transform", data={}, jmespath_expression="people[?")))
    assert isinstance(err, ConfigError) and (err.stage, err.field) == ("t", "config.jmespath_expression")


# ------------------------------------------------------------- filter


@pytest.mark.parametrize("score,passed", [(0.9, True), (0.2, False)])
def test_filter_pass_fail(ops, score, passed):
    out = ops.run_one("filter", {"score": score}, data={"score": "{{input.score}}"}, condition="data['score'] > 0.8")
    assert out["passed"] is passed
    assert out["data"] == ({"score": score} if passed else None)


def test_filter_condition_from_the_cicd_template(ops):
    cond = "data.get('status') == 'success' and data.get('tests_passed', False) == True"
    assert ops.run_one("filter", data={"status": "success", "tests_passed": True}, condition=cond)["passed"] is True
    assert ops.run_one("filter", data={"status": "success"}, condition=cond)["passed"] is False


def test_filter_condition_with_templates_inside(ops):
    p = ops.pipeline(ops.stage("n", "json-transform", template={"count": "{{input.count}}"}),
                     ops.stage("f", "filter", ["n"], data="{{input}}", condition="{{upstream.n.count}} > 3 and data['ok']"))
    assert ops.run(p, {"count": 5, "ok": True}).output["passed"] is True
    assert ops.run(p, {"count": 2, "ok": True}).output["passed"] is False
    assert ops.run_one("filter", data=4, condition="{{data > 3}}")["passed"] is True


def test_filter_invert_and_field_conditions(ops):
    assert ops.run_one("filter", data={"a": 1}, condition="data['a'] == 1", invert=True)["passed"] is False
    assert ops.run_one("filter", data={"s": "on", "n": 2}, field_conditions={"s": "on", "n": 2})["passed"] is True
    out = ops.run_one("filter", data={"s": "on"}, field_conditions={"s": "on", "n": 2})
    assert out["passed"] is False and "missing field 'n'" in out["reason"]
    assert ops.run_one("filter", data={"s": "on"}, field_conditions={"n": 2}, pass_if_missing=True)["passed"] is True


def test_filter_array_keeps_items(ops):
    items = [{"id": 1, "status": "active"}, {"id": 2, "status": "off"}, {"id": 3, "status": "active"}]
    out = ops.run_one("filter", {"items": items}, data="{{input.items}}", filter_mode="filter_array",
                      condition="item.get('status') == 'active'")
    assert [i["id"] for i in out["data"]] == [1, 3]
    assert out["filtered_count"] == 1 and out["passed"] is True


def test_filter_array_with_data_is_a_config_error(ops):
    p = ops.pipeline(ops.stage("f", "filter", data=[1, 2], filter_mode="filter_array", condition="data > 1"))
    err, _ = ops.fails(p)
    assert (err.stage, err.field) == ("f", "config.condition") and "`item`" in err.message


def test_filter_runtime_error_does_not_pass_unless_lenient(ops):
    out = ops.run_one("filter", data={"a": 1}, condition="data['missing'] > 1")
    assert out["passed"] is False and "expression error" in out["reason"]
    assert ops.run_one("filter", data={"a": 1}, condition="data['missing'] > 1", pass_if_missing=True)["passed"] is True


def test_filter_unparsable_condition_names_the_field(ops):
    err, _ = ops.fails(ops.pipeline(ops.stage("f", "filter", data=1, condition="data >")))
    assert isinstance(err, ConfigError) and (err.stage, err.field) == ("f", "config.condition")


def test_filter_fail_on_reject_stops_dependents(ops):
    p = ops.pipeline(ops.stage("gate", "filter", data={"ok": False}, condition="data['ok']", fail_on_reject=True),
                     ops.stage("after", "logger", ["gate"], message="ran"))
    err, run = ops.fails(p)
    assert err.stage == "gate" and "did not pass" in err.message


# ------------------------------------------------------------- loop


def test_loop_batches_like_the_earlier_operator(ops):
    out = ops.run_one("loop", {"docs": list(range(10))}, items="{{input.docs}}", batch_size=3)
    assert out["batches"] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert (out["total_items"], out["total_batches"], out["has_more"]) == (10, 4, False)
    out = ops.run_one("loop", items=list(range(10)), batch_size=3, max_iterations=2, start_index=1)
    assert out["batches"] == [[1, 2, 3], [4, 5, 6]]
    assert out["has_more"] is True
    assert out["metadata"] == {"start_index": 1, "batch_size": 3, "items_processed": 7, "items_remaining": 3}


def test_loop_items_must_be_a_list(ops):
    problems = ops.invalid(ops.pipeline(ops.stage("l", "loop", items="abc"), ops.stage("m", "loop", items=[1], batch_size=0)))
    assert {(e.stage, e.field) for e in problems} == {("l", "config.items"), ("m", "config.batch_size")}
    err, _ = ops.fails(ops.pipeline(ops.stage("l", "loop", items="{{input.x}}")), {"x": {"not": "a list"}})
    assert (err.stage, err.field) == ("l", "config.items")


# ------------------------------------------------------------- schema-validate

SCHEMA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}


def test_schema_validate_valid_passes_data_on(ops):
    out = ops.run_one("schema-validate", {"name": "x", "age": 3}, data="{{input}}", schema=SCHEMA)
    assert out == {"valid": True, "data": {"name": "x", "age": 3}, "errors": [], "error_count": 0}


def test_schema_validate_strict_fails_the_stage(ops):
    p = ops.pipeline(ops.stage("check", "schema-validate", data="{{input}}", schema=SCHEMA))
    err, _ = ops.fails(p, {"age": 3})
    assert isinstance(err, StageError) and (err.stage, err.field) == ("check", "config.data")
    assert "name" in err.message


def test_schema_validate_not_strict_reports(ops):
    out = ops.run_one("schema-validate", data={"name": 5}, json_schema=SCHEMA, strict=False)
    assert out["valid"] is False and out["error_count"] == 1 and "name" in out["errors"][0]["message"]


def test_schema_validate_coerces_types(ops):
    out = ops.run_one("schema-validate", data={"name": 12, "age": "7"}, schema=SCHEMA, coerce_types=True)
    assert out["valid"] is True and out["data"] == {"name": "12", "age": 7}


def test_schema_validate_formats_are_annotations_unless_asked(ops):
    schema = {"type": "object", "properties": {"url": {"type": "string", "format": "uri"},
                                               "format": {"type": "string", "enum": ["pdf"]}}}
    data = {"url": "ghcr.io/org/app:v2", "format": "pdf"}
    assert ops.run_one("schema-validate", data=data, schema=schema)["valid"] is True
    out = ops.run_one("schema-validate", data=data, schema=schema, check_formats=True, strict=False)
    assert out["valid"] is False and "uri" in out["errors"][0]["message"]
    # a property that happens to be called "format" is still checked
    assert ops.run_one("schema-validate", data={"format": "doc"}, schema=schema, strict=False)["valid"] is False


def test_schema_validate_bad_schema_names_the_field(ops):
    err, _ = ops.fails(ops.pipeline(ops.stage("v", "schema-validate", data=1, schema={"type": "nonsense"})))
    assert (err.stage, err.field) == ("v", "config.schema")
    # no schema at all: refused before the run (`schema` or its alias `json_schema` is required)
    (err,) = ops.invalid(ops.pipeline(ops.stage("v", "schema-validate", data=1)))
    assert err.field == "config.schema" and "'schema' or 'json_schema'" in err.message
    # a schema that arrives only at run time is checked then
    err, _ = ops.fails(ops.pipeline(ops.stage("v", "schema-validate", data=1, schema="{{input.none}}")))
    assert err.field == "config.schema"


# ------------------------------------------------------------- merge and text-template


def test_merge_strategies(ops):
    a, b = {"x": {"p": 1, "q": 2}, "k": 1}, {"x": {"q": 3}, "z": 0}
    assert ops.run_one("merge", sources=[a, None, b]) == {"x": {"p": 1, "q": 3}, "k": 1, "z": 0}
    assert ops.run_one("merge", sources=[a, b], strategy="shallow") == {"x": {"q": 3}, "k": 1, "z": 0}
    assert ops.run_one("merge", inputs=[[1], 2, None, [3, 4]], strategy="concat") == [1, 2, 3, 4]


def test_merge_of_a_non_object_names_its_index(ops):
    err, _ = ops.fails(ops.pipeline(ops.stage("m", "merge", sources=[{"a": 1}, [2]])))
    assert (err.stage, err.field) == ("m", "config.sources[1]")


def test_text_template_with_values(ops):
    out = ops.run_one("text-template", {"who": "Ada"}, template="  Hi {{input.who}}, {{n}} items: {{items}}  ",
                      values={"n": 2, "items": ["a", "b"]}, strip=True)
    assert out == {"text": 'Hi Ada, 2 items: ["a", "b"]', "length": 27}
    assert ops.run_one("text-template", template="{{n}}", values={"n": 5})["text"] == "5"
    assert ops.run_one("text-template", template="{{b}}", values={"b": True})["text"] == "true"


def test_text_template_unknown_name_names_the_stage(ops):
    # refused before the run now: the template's names are checked statically
    (err,) = ops.invalid(ops.pipeline(ops.stage("t", "text-template", template="{{nope}}")))
    assert err.stage == "t" and err.field == "config.template" and "unknown name 'nope'" in err.message
    # names given in `values` are in scope
    ops.run(ops.pipeline(ops.stage("t", "text-template", template="{{nope}}", values={"nope": 1})))
