"""Pipeline, input and test files: a byte-order mark is read, undecodable bytes are a clear error naming the file."""
from __future__ import annotations

import json

import pytest

from flowmason.kernel.errors import InputError, PipelineLoadError
from flowmason.kernel.jsonfile import read_json
from flowmason.kernel.model import load_pipeline

DOC = {"name": "b", "stages": [{"id": "a", "type": "json-transform", "config": {"data": "é"}}]}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-32"])
def test_utf8_with_or_without_a_bom_and_utf16_32_with_one_are_read(tmp_path, encoding):
    f = tmp_path / "p.pipeline.json"
    f.write_bytes(json.dumps(DOC, ensure_ascii=False).encode(encoding))
    assert load_pipeline(f).stages[0].config["data"] == "é"


@pytest.mark.parametrize("raw, words", [
    (b"\xff\xfe\x00garbage\x80", ["is not UTF-16-LE text", "offset 10"]),
    (b'{"a": "\xff"}', ["is not UTF-8 text", "byte 0xff at offset 7"]),
    (b"  \n", ["is empty"]),
    (b'{"a": }', ["malformed JSON at line 1, column 7"]),
])
def test_unreadable_files_name_the_file_and_the_fix(tmp_path, raw, words):
    f = tmp_path / "bad.pipeline.json"
    f.write_bytes(raw)
    with pytest.raises(PipelineLoadError) as info:
        load_pipeline(f)
    text = str(info.value)
    assert all(w in text for w in words), text
    assert str(f) in text and "(fix:" in text


def test_the_callers_error_class_and_an_empty_default(tmp_path):
    f = tmp_path / "in.json"
    f.write_bytes(b"\xff\xfe\xfd")
    with pytest.raises(InputError) as info:
        read_json(f, error=InputError, what="input file", field="input")
    assert info.value.field == "input" and "input file" in info.value.message and info.value.pipeline is None
    f.write_bytes(b"")
    assert read_json(f, error=InputError, empty={}) == {}
    with pytest.raises(PipelineLoadError, match="not found"):
        read_json(tmp_path / "nope.json")
    with pytest.raises(PipelineLoadError, match="cannot read"):
        read_json(tmp_path)
