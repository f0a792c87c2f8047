"""Each assertion type, passing and failing, on outputs and stage results."""
from __future__ import annotations

import pytest

from flowmason.plugins.testing.runner import _MISSING, evaluate, walk

OUT = {"content": "Owls hunt at night", "score": 0.8, "tags": ["a", "b"], "items": [{"n": 1}], "none": None}

CASES = [
    ({"path": "content", "type": "equals", "value": "Owls hunt at night"}, {"value": "Owls"}),
    ({"path": "content", "type": "notEquals", "value": "x"}, {"value": "Owls hunt at night"}),
    ({"path": "content", "type": "contains", "value": "hunt"}, {"value": "day"}),
    ({"path": "tags", "type": "contains", "value": "a"}, {"value": "z"}),
    ({"path": "content", "type": "not-contains", "value": "day"}, {"value": "night"}),
    ({"path": "content", "type": "matches", "value": r"^Owls\b"}, {"value": r"^owls$"}),
    ({"path": "score", "type": "range", "min": 0, "max": 1}, {"min": 0.9}),
    ({"path": "score", "type": "lessThan", "value": 1}, {"value": 0.5}),
    ({"path": "score", "type": "greater_than", "value": 0.5}, {"value": 0.9}),
    ({"path": "items.0.n", "type": "equals", "value": 1}, {"value": 2}),
    ({"path": "content", "type": "exists"}, {"path": "nope"}),
    ({"path": "nope", "type": "notExists"}, {"path": "content"}),
    ({"path": "tags", "type": "type", "value": "array"}, {"value": "object"}),
    ({"path": "tags", "type": "lengthEquals", "value": 2}, {"value": 3}),
    ({"path": "tags", "type": "lengthLessThan", "value": 3}, {"value": 2}),
    ({"path": "tags", "type": "lengthGreaterThan", "value": 1}, {"value": 2}),
    ({"type": "json-schema", "schema": {"type": "object", "required": ["content"]}},
     {"schema": {"type": "object", "required": ["missing"]}}),
]


@pytest.mark.parametrize("passing,changes", CASES, ids=[c[0]["type"] + ":" + str(c[0].get("path")) for c in CASES])
def test_assertion_passes_and_fails(passing, changes):
    assert evaluate(passing, OUT, {}, {}).passed
    failing = {**passing, **changes}
    result = evaluate(failing, OUT, {}, {})
    assert not result.passed and result.message


def test_stage_output_and_status():
    stages = {"a": "completed", "b": "skipped"}
    outputs = {"a": {"score": 3}}
    assert evaluate({"stage": "a", "path": "score", "type": "equals", "value": 3}, None, stages, outputs).passed
    assert evaluate({"stage": "b", "type": "status", "value": "skipped"}, None, stages, outputs).passed
    assert evaluate({"stage": "a", "type": "status", "value": "executed"}, None, stages, outputs).passed
    missing = evaluate({"stage": "c", "path": "x", "type": "exists"}, None, stages, outputs)
    assert not missing.passed and "did not run" in missing.message
    skipped = evaluate({"stage": "b", "path": "x", "type": "exists"}, None, stages, outputs)
    assert not skipped.passed and "skipped" in skipped.message


def test_custom_message_and_bad_regex():
    r = evaluate({"path": "score", "type": "equals", "value": 1, "message": "score must be perfect"}, OUT, {}, {})
    assert r.message == "score must be perfect"
    r = evaluate({"path": "content", "type": "matches", "value": "("}, OUT, {}, {})
    assert not r.passed and "bad regular expression" in r.message


def test_walk():
    assert walk(OUT, "") is OUT
    assert walk(OUT, "$.items.0.n") == 1
    assert walk(OUT, "tags.9") is _MISSING and walk(OUT, "content.x") is _MISSING
    assert walk(OUT, "none") is None
