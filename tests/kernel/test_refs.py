"""What a template expression reads (kernel/refs.py) and the run-time refusal of a missing output field."""
from __future__ import annotations

import pytest

from flowmason.kernel.errors import TemplateError
from flowmason.kernel.templating import Expr, compile_value


def reads(text):
    return Expr(text).reads()


def test_plain_path_reads_its_root_and_path():
    names, functions, paths = reads("upstream.a.value")
    assert names == {"upstream"} and not functions and list(paths) == [(("upstream", "a", "value"), False)]


def test_expression_names_functions_and_lenient_operands():
    names, functions, paths = reads("len(inptu.items) + upstream.a.n or upstream.b.d")
    assert names == {"inptu", "upstream"} and functions == {"len"}
    assert (("upstream", "a", "n"), True) in paths and (("upstream", "b", "d"), False) in paths


def test_comprehension_variables_and_methods_are_not_roots_or_fields():
    names, _, paths = reads("[r for r in upstream.a.rows if r.get('ok')]")
    assert names == {"upstream"}
    assert [p for p, _ in paths] == [("upstream", "a", "rows")]
    _, _, paths = reads("upstream.fetch-data.body.get('x')")
    assert [p for p, _ in paths] == [("upstream", "fetch-data", "body")]


def render(text, up):
    return compile_value(text)[0]({"input": {}, "upstream": up})


@pytest.mark.parametrize("text", ["{{upstream.a.vaule}}", "{{upstream.a.vaule + 1}}", "n={{upstream.a.vaule}}"])
def test_missing_output_field_is_an_error_with_a_guess(text):
    with pytest.raises(TemplateError) as info:
        render(text, {"a": {"value": 1}})
    assert "stage 'a'" in info.value.message and "'vaule'" in info.value.message
    assert "did you mean 'value'?" in info.value.hint


def test_missing_nested_field_names_where():
    with pytest.raises(TemplateError) as info:
        render("{{upstream.a.body.itmes}}", {"a": {"body": {"items": []}}})
    assert "'body'" in info.value.message and "did you mean 'items'?" in info.value.hint


def test_or_default_and_absent_stages_still_read_null_or_default():
    assert render("{{upstream.a.vaule or 'default'}}", {"a": {"value": 1}}) == "default"
    assert render("{{upstream.a.x if upstream.a.x else 'n'}}", {"a": {}}) == "n"
    assert render("{{upstream.skipped.x}}", {"skipped": None}) is None  # a branch not taken
    assert render("{{upstream.later.x}}", {}) is None  # not run (yet)
    assert render("{{upstream.a.get('vaule')}}", {"a": {}}) is None
    assert compile_value("{{input.optional}}")[0]({"input": {}, "upstream": {}}) is None


def test_subscripts_follow_the_same_rule():
    with pytest.raises(TemplateError, match="no field 'vaule'"):
        render("{{upstream['a']['vaule']}}", {"a": {"value": 1}})
    assert render("{{upstream['a']['vaule'] or 'd'}}", {"a": {"value": 1}}) == "d"
    assert render("{{upstream['fetch-data']['body']['n'] + 1}}", {"fetch-data": {"body": {"n": 1}}}) == 2
    with pytest.raises(TemplateError, match="KeyError"):  # outside a stage's output: a plain KeyError, as before
        compile_value("{{input['k']}}")[0]({"input": {}, "upstream": {}})
