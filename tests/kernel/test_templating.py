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
