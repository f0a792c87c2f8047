"""Templates: typed whole values, text interpolation, expressions, sandbox, env allow-list."""
from __future__ import annotations

import pytest

from flowmason.kernel.errors import TemplateError
from flowmason.kernel.templating import EnvView, compile_value, evaluate


def scope(**kw):
    base = {"input": {}, "upstream": {}, "context": {}, "env": EnvView(frozenset()), "variables": {}}
    base.update(kw)
    return base


def r(value, **kw):
    return compile_value(value)[0](scope(**kw))


def test_whole_value_keeps_type():
    assert r("{{input.items}}", input={"items": [1, 2]}) == [1, 2]
    assert r("{{ input.n }}", input={"n": 3}) == 3


def test_interpolation_and_json_for_structures():
    assert r("n={{input.n}} l={{input.l}}", input={"n": 3, "l": [1]}) == "n=3 l=[1]"


def test_hyphenated_stage_ids_and_expressions():
    up = {"fetch-data": {"items": [{"ok": True}, {"ok": False}]}}
    assert r("{{upstream.fetch-data.items}}", upstream=up) == up["fetch-data"]["items"]
    assert r("{{len([i for i in upstream.fetch-data.items if i.get('ok')])}}", upstream=up) == 1


def test_defaults_and_now():
    assert r("{{input.x or 'default'}}", input={}) == "default"
    assert isinstance(r("{{now()}}"), str) and "T" in r("{{now()}}")


def test_static_values_are_not_copied():
    value = {"a": [1, 2], "b": "plain"}
    render, dynamic = compile_value(value)
    assert not dynamic and render({}) is value


def test_sandbox_blocks_dunder_and_imports():
    with pytest.raises(TemplateError):
        r("{{input.__class__}}", input={})
    with pytest.raises(TemplateError):
        r("{{__import__('os').system('true')}}")
    with pytest.raises(TemplateError):
        r("{{(1).__class__.__bases__}}")


def test_env_is_allow_listed(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    monkeypatch.setenv("FM_ENV_ALLOWLIST", "REGION")
    monkeypatch.setenv("REGION", "eu")
    s = scope(env=EnvView())
    assert compile_value("{{env.REGION}}")[0](s) == "eu"
    with pytest.raises(TemplateError, match="not allow-listed"):
        compile_value("{{env.SECRET_KEY}}")[0](s)


def test_bad_expression_is_reported_at_compile_time():
    with pytest.raises(TemplateError, match="invalid expression"):
        compile_value("{{input.x +}}")


def test_bare_expression_evaluation():
    assert evaluate("data.get('n', 0) > 2", {"data": {"n": 3}}) is True
    assert evaluate("{{data.n}}", {"data": {"n": 3}}) == 3


# -- the earlier product's forms of a stage's output --

def test_earlier_forms_of_a_stage_output_read_upstream():
    up = {"a": {"v": "A"}, "fetch-data": {"body": {"n": 1}}, "s": "text"}
    for text in ("{{stages.a.output.v}}", "{{a.output.v}}", "{{upstream.a.output.v}}", "{{upstream.a.v}}"):
        assert r(text, upstream=up) == "A", text
    assert r("{{stages.a.output}}", upstream=up) == r("{{a.output}}", upstream=up) == {"v": "A"}
    assert r("{{fetch-data.output.body.n}}", upstream=up) == r("{{stages.fetch-data.output.body}}", upstream=up)["n"] == 1
    assert r("{{upstream.s.output}}", upstream=up) == "text"  # a stage whose output is not an object
    # in expressions too (the sandbox path)
    assert r("{{upstream.a.output.v or 'x'}}", upstream=up) == r("{{stages.a.output.v or 'x'}}", upstream=up) == "A"
    assert r("{{upstream['fetch-data'].output.body.n + 1}}", upstream=up) == 2
    assert r("said {{a.output.v}}!", upstream=up) == "said A!"


def test_a_real_output_field_wins_and_names_in_scope_are_not_stages():
    up = {"a": {"output": "field", "v": 1}}
    assert r("{{upstream.a.output}}", upstream=up) == "field"
    assert r("{{stages.a.output}}", upstream=up) == "field"
    assert r("{{upstream.a.output or 'x'}}", upstream=up) == "field"
    # `input` is a root: `input.output` is the input field, never a stage
    assert r("{{input.output}}", input={"output": 5}, upstream={"input": {"output": 6}}) == 5
    # a name in scope (a foreach item variable) is read as that name first
    assert compile_value("{{svc.output}}")[0]({**scope(upstream={"svc": {"output": 1}}), "svc": {"output": 9}}) == 9
    assert r("{{missing.output.v}}") is None  # unknown stage: None here; the plan reports it


def test_references_report_the_earlier_forms_as_upstream():
    from flowmason.kernel.templating import references, static_form

    refs = references({"a": "{{stages.one.output.v}}", "b": "x {{two.output}} y", "c": "{{upstream.three.output.f}}",
                       "d": "{{input.output}}"})
    stages = {ref[1] for ref in refs if ref[0] == "upstream" and len(ref) > 1}
    assert stages == {"one", "two", "three"}
    assert static_form("stages.one.output.v") == static_form("one.output.v") == "upstream.one.v"
    assert static_form("upstream.one.output.v or 'x'") == "upstream.one.v or 'x'"
    assert static_form("input.output") == "input.output"
