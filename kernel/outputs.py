"""Output schemas: how a component says what it returns, and how a reference is checked against it.

A component's ``output_schema`` is a JSON Schema. An object schema with
``additionalProperties: false`` is *closed*: it lists every field the
component returns, so ``{{upstream.a.vaule}}`` can be refused before the
run with a "did you mean". Anything else (no ``additionalProperties:
false``, no ``properties``, a ``{}``) is open-ended and no reference into
it is refused: a passthrough, an HTTP body, whatever a template renders.

``obj`` and ``any_value`` build the schemas the built-in components
declare (``described`` adds descriptions to a config schema's fields); ``missing_field`` walks a reference path through a schema and
names the first field that cannot exist; ``fields`` lists a schema's
fields for ``fm schema --component``.
"""
from __future__ import annotations

from typing import Any, Iterable

_TYPES = ("string", "integer", "number", "boolean", "object", "array", "null")


def any_value(description: str) -> dict[str, Any]:
    """An open-ended value: anything, described."""
    return {"description": description}


def f(kind: str | list[str] | None, description: str, **extra: Any) -> dict[str, Any]:
    """One field: a JSON type (or list of types, or None for any) and what it means."""
    out: dict[str, Any] = {"description": description}
    if kind is not None:
        out["type"] = kind
    out.update(extra)
    return out


def obj(description: str, fields: dict[str, dict[str, Any]], *, required: Iterable[str] | None = None,
        closed: bool = True) -> dict[str, Any]:
    """An object output; closed (every field listed) unless ``closed=False``."""
    out: dict[str, Any] = {"type": "object", "description": description, "properties": fields}
    out["required"] = list(required) if required is not None else list(fields)
    if closed:
        out["additionalProperties"] = False
    return out


def described(schema: dict[str, Any], descriptions: dict[str, str]) -> dict[str, Any]:
    """``schema`` with a description on each named config field (a field not listed yet accepts any value)."""
    props = schema.setdefault("properties", {})
    for name, text in descriptions.items():
        sub = props.get(name)
        props[name] = {**(sub if isinstance(sub, dict) else {}), "description": text}
    return schema


def is_closed(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("additionalProperties") is False and isinstance(
        schema.get("properties"), dict)


def missing_field(schema: Any, path: tuple[str, ...]) -> tuple[int, list[str]] | None:
    """Where ``path`` (keys below the stage's output) leaves a closed schema: (index, known fields), else None.

    Walks properties (and array items for numeric keys); stops, accepting,
    at the first open-ended part.
    """
    current = schema
    for i, key in enumerate(path):
        if not isinstance(current, dict):
            return None
        if current.get("type") == "array" or (key.lstrip("-").isdigit() and "items" in current):
            if not key.lstrip("-").isdigit():
                return None
            current = current.get("items")
            continue
        props = current.get("properties")
        if isinstance(props, dict) and key in props:
            current = props[key]
            continue
        if is_closed(current):
            return i, list(props)  # type: ignore[arg-type]
        return None
    return None


def close_match(name: str, known: Iterable[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return found[0] if found else None


def fields(schema: Any, prefix: str = "", depth: int = 0) -> list[dict[str, Any]]:
    """Rows (name, type, description, required, open) for each field of a schema, nested fields dotted."""
    rows: list[dict[str, Any]] = []
    if not isinstance(schema, dict) or depth > 4:
        return rows
    props = schema.get("properties")
    if not isinstance(props, dict):
        return rows
    required = set(schema.get("required") or ())
    for name, sub in props.items():
        sub = sub if isinstance(sub, dict) else {}
        full = f"{prefix}{name}"
        rows.append({"name": full, "type": type_label(sub), "description": sub.get("description", ""),
                     "required": name in required,
                     "open": bool(sub.get("properties")) and not is_closed(sub)})
        rows.extend(fields(sub, full + ".", depth + 1))
    return rows


def type_label(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        return "|".join(str(k) for k in kind)
    if kind:
        return str(kind)
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return "|".join(type_label(s) for s in schema[key] if isinstance(s, dict))
    if "enum" in schema:
        return "enum"
    return "any"


def template_shape(template: Any, description: str) -> dict[str, Any]:
    """The output schema of a value built by rendering ``template``: a dict's keys are known, the rest is open."""
    if isinstance(template, dict):
        return obj(description, {str(k): template_shape(v, "a field of the template") for k, v in template.items()})
    if isinstance(template, str) and "{{" in template:
        return any_value(description + " (a template: its value when rendered)")
    if isinstance(template, list):
        return f("array", description)
    if isinstance(template, bool):
        return f("boolean", description)
    if isinstance(template, (int, float)):
        return f("number", description)
    if isinstance(template, str):
        return f("string", description)
    return any_value(description)
