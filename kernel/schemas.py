"""JSON Schema checks (pipeline inputs and outputs, component configs), compiled once.

``fastjsonschema`` compiles a schema to Python once (about 20 ms to
import, against 70 ms for ``jsonschema``); compiled validators are cached by
the schema's JSON text.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Callable


class CompiledSchema:
    __slots__ = ("_validate", "schema")

    def __init__(self, schema: dict[str, Any], validate: Callable[[Any], Any]) -> None:
        self.schema = schema
        self._validate = validate

    def first_error(self, value: Any) -> str | None:
        """None when ``value`` is valid, else a message naming the path."""
        import fastjsonschema

        try:
            self._validate(value)
        except fastjsonschema.JsonSchemaValueException as exc:
            path = exc.name.replace("data", "", 1).lstrip(".") if exc.name else ""
            if exc.rule == "required" and isinstance(exc.rule_definition, list):
                have = exc.value if isinstance(exc.value, dict) else {}
                missing = [k for k in exc.rule_definition if k not in have]
                msg = f"is missing required field(s): {', '.join(missing)}"
            else:
                msg = exc.message.replace(exc.name or "data", "value", 1) if exc.message else "is invalid"
            return f"at '{path}': {msg}" if path else msg
        return None

    def apply_defaults(self, value: Any) -> Any:
        """fastjsonschema fills `default`s while validating; return the completed value."""
        try:
            return self._validate(value)
        except Exception:  # noqa: BLE001 - callers call first_error() for the message
            return value


# `format` is an annotation, not an assertion, in JSON Schema 2019+ and in the
# earlier product's validator; existing example inputs rely on that.
_FORMATS = ("date", "date-time", "time", "email", "idn-email", "hostname", "idn-hostname", "ipv4", "ipv6",
            "uri", "uri-reference", "iri", "iri-reference", "uri-template", "uuid", "regex", "json-pointer",
            "relative-json-pointer", "duration")
_LABEL_FORMATS = {name: (lambda value: True) for name in _FORMATS}


@lru_cache(maxsize=512)
def _compile(text: str, assert_formats: bool = False) -> CompiledSchema:
    import fastjsonschema

    schema = json.loads(text)
    try:
        fn = fastjsonschema.compile(schema, use_default=True, **({} if assert_formats else {"formats": _LABEL_FORMATS}))
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        raise ValueError(f"invalid JSON Schema: {exc}") from None
    return CompiledSchema(schema, fn)


def compile_schema(schema: dict[str, Any], *, assert_formats: bool = False) -> CompiledSchema:
    """Compiled once per distinct schema; ``format`` is checked only with ``assert_formats``."""
    return _compile(json.dumps(schema, sort_keys=True, default=str), assert_formats)
