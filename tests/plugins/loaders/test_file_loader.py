"""Files the loaders read (an `extends` parent, a sub-pipeline): a byte-order mark is read, undecodable bytes are a clear error."""
from __future__ import annotations

import json

import pytest

from flowmason.kernel.errors import FlowMasonError
from flowmason.kernel.runner import Runner

BASE = {"id": "base", "name": "base", "stages": [
    {"id": "first", "component": "json-transform", "config": {"template": {"who": "{{input.name}}"}}}]}
PARENT = {"id": "parent", "name": "parent", "stages": [
    {"id": "call", "type": "subpipeline", "config": {"pipeline": "file://sub.pipeline.json", "input_data": {}}}]}


def test_a_parent_saved_with_a_bom_is_extended(tmp_path):
    (tmp_path / "base.pipeline.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(BASE).encode())
    child = tmp_path / "child.pipeline.json"
    child.write_text(json.dumps({"id": "child", "name": "child", "extends": "base", "stages": []}))
    assert Runner().run_sync(child, {"name": "ada"}).output == {"who": "ada"}


def test_an_undecodable_sub_pipeline_fails_the_stage_naming_the_file(tmp_path):
    (tmp_path / "sub.pipeline.json").write_bytes(b'{"name": "caf\xe9", "stages": []}')
    parent = tmp_path / "parent.pipeline.json"
    parent.write_text(json.dumps(PARENT))
    with pytest.raises(FlowMasonError) as info:
        Runner().run_sync(parent, {})
    assert "sub.pipeline.json is not UTF-8 text: byte 0xe9" in str(info.value)
    assert info.value.hint == "save the file as UTF-8 (a byte-order mark is fine)"
