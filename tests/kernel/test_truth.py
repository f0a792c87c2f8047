"""The one truthiness rule: its values, and the filter operator using it like control flow does."""
from __future__ import annotations

import pytest

from flowmason.kernel.truth import is_word, truthy

from tests.support.cli import fm

FALSE = ["false", "False", " FALSE ", "0", "no", "No", "off", "OFF", "", "  ", None, False, 0, 0.0, [], {}]
TRUE = ["true", "yes", "1", "on", "x", "falsey", "00", True, 1, 2.5, [0], {"a": 1}]


@pytest.mark.parametrize("value", FALSE)
def test_false_values(value):
    assert truthy(value) is False


@pytest.mark.parametrize("value", TRUE)
def test_true_values(value):
    assert truthy(value) is True


def test_words_are_not_expressions():
    assert is_word(" Off ") and is_word("yes") and not is_word("input.n > 3")


@pytest.mark.parametrize("flag, passed", [("false", False), ("no", False), ("true", True)])
def test_the_filter_operator_reads_a_rendered_word_as_control_flow_does(tmp_path, capsys, flag, passed):
    import json

    p = tmp_path / "f.pipeline.json"
    p.write_text(json.dumps({"id": "f", "name": "f", "stages": [
        {"id": "gate", "component_type": "filter", "config": {"data": "{{input}}", "condition": "{{input.flag}}"}}]}))
    code, out, err = fm(capsys, "--store", f"sqlite:///{tmp_path / 's.db'}", "run", "-q", str(p),
                        "--input", json.dumps({"flag": flag}))
    assert code == 0, err
    assert json.loads(out)["passed"] is passed
