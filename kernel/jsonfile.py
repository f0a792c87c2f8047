"""Read a JSON file a user hands us (a pipeline, an input file, a test file) with one clear error for each way it fails.

Decoding is the standard library's: ``json.loads`` on the file's bytes
reads UTF-8, UTF-8 with a byte-order mark (what Windows editors save) and
UTF-16/32 (what PowerShell's ``>`` writes), as RFC 8259 section 8.1 lets a
reader do. Anything else — bytes that are not text in those encodings, an
empty file, malformed JSON, a path that cannot be read — becomes the
caller's error class naming the file, the place and the fix; never a
traceback.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import FlowMasonError, PipelineLoadError

_REFUSE = object()


def read_json(path: str | Path, *, error: type[FlowMasonError] = PipelineLoadError, what: str = "pipeline file",
              pipeline: str | None = None, field: str | None = None, empty: Any = _REFUSE) -> Any:
    """The decoded JSON value in ``path``; ``error`` naming ``path`` for anything unreadable.

    ``pipeline``/``field``: where the error says it happened; ``empty``: the value of an empty
    (or all-whitespace) file, which by default is an error too.
    """
    p = Path(path)
    where = {"pipeline": pipeline, "field": field}
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} not found: {p}", **where, hint="check the path") from None
    except OSError as exc:
        raise error(f"cannot read {what} {p}: {exc.strerror}", **where) from None
    if not raw.strip():
        if empty is not _REFUSE:
            return empty
        raise error(f"{what} {p} is empty", **where, hint="write a JSON object into it")
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise error(
            f"{what} {p} is not {exc.encoding.upper()} text: byte 0x{raw[exc.start]:02x} at offset {exc.start} "
            "cannot be decoded",
            **where, hint="save the file as UTF-8 (a byte-order mark is fine)",
        ) from None
    except json.JSONDecodeError as exc:
        raise error(
            f"malformed JSON at line {exc.lineno}, column {exc.colno} of {p}: {exc.msg}", **where,
            hint="fix the JSON syntax at that position",
        ) from None
