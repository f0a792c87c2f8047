"""Data operators: json-transform, filter, loop, schema-validate, merge, text-template.

Config keys and outputs follow the earlier product's operators and the
files written for it:

- ``json-transform``: ``template`` (rendered with ``data`` in scope; the
  output *is* the rendered template, which is how the shipped templates
  read it: ``{{upstream.ingest.customer_name}}``), or the earlier
  operator's ``mapping`` / ``jmespath_expression`` (also read as
  ``expression``, which the earlier ``flowmason init`` wrote) / ``flatten`` modes with
  output ``{result, fields_mapped, fields_missing}``.
- ``filter``: ``data`` + ``condition`` (a bare expression over ``data``; over
  ``item`` in ``filter_mode: filter_array``), ``field_conditions``,
  ``invert``, ``pass_if_missing``; output ``{passed, data, filtered_count,
  reason}``; ``fail_on_reject`` (new) fails the stage instead, so that
  what depends on it does not run. A condition that does not parse is a config error; one that
  fails on this data (a missing key) does not pass, as before.
- ``loop``: splits ``items`` into ``batches`` (it does not run stages; that
  is ``foreach``).
- ``schema-validate``: ``data`` + ``schema`` (or ``json_schema``), ``strict``
  fails the stage on invalid data; ``format`` is an annotation unless
  ``check_formats`` is set (as the earlier validator read it; the kernel's schema cache does this). fastjsonschema (the kernel's compiled
  cache) reports the first error only, so ``errors`` has at most one entry.

Expressions go through ``ctx.evaluate`` / ``ctx.render`` (the kernel's
sandbox); nothing here calls ``eval``.
"""
from __future__ import annotations

import json
import re
from typing import Any

from flowmason.kernel.errors import StageError, TemplateError
from flowmason.kernel.outputs import any_value, described, f, obj, template_shape
from flowmason.kernel.truth import truthy

from ._common import config_error, core_operator, get_path

# ---------------------------------------------------------------- json-transform

JSON_TRANSFORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {"description": "input data; `data` inside the template"},
        "template": {"description": "any JSON value whose {{...}} templates are rendered with `data` in scope"},
        "mapping": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "output field -> dotted path in data (user.name, items[0].id)"},
        "jmespath_expression": {"type": "string"},
        "expression": {"type": "string", "description": "the same as jmespath_expression (what `flowmason init` wrote)"},
        "defaults": {"type": "object"},
        "flatten": {"type": "boolean"},
        "exclude_fields": {"type": "array", "items": {"type": "string"}},
        "parse_json_strings": {"type": "boolean"},
    },
}

described(JSON_TRANSFORM_SCHEMA, {
    "data": JSON_TRANSFORM_SCHEMA["properties"]["data"]["description"],
    "template": JSON_TRANSFORM_SCHEMA["properties"]["template"]["description"] + "; the output is the rendered value",
    "jmespath_expression": "a JMESPath query over data (https://jmespath.org); output {result, ...}",
    "defaults": "with mapping: output field -> value when its path is missing",
    "flatten": "flatten nested data to dotted keys (a.b, items[0])",
    "exclude_fields": "with mapping: output fields to drop",
    "parse_json_strings": "parse data given as a JSON string (default true)",
})

_CODE_BLOCK = re.compile(r"```(?:json)?\s*([\s\S]*?)```")


def parse_json_text(text: str) -> Any:
    """JSON from a string as models write it: bare, in a ```json block, or embedded in prose.

    Returns the string unchanged when no JSON value is found.
    """
    body = text.strip()
    block = _CODE_BLOCK.search(body)
    if block:
        body = block.group(1).strip()
    try:
        return json.loads(body)
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for opener in ("{", "["):
        start = body.find(opener)
        if start != -1:
            try:
                return decoder.raw_decode(body, start)[0]
            except ValueError:
                continue
    return text


def _flatten(data: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {} if out is None else out
    if isinstance(data, dict):
        for key, value in data.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(data, list) and prefix:
        for i, value in enumerate(data):
            _flatten(value, f"{prefix}[{i}]", out)
    else:
        out[prefix or "value"] = data
    return out


_RESHAPED = obj("With mapping, jmespath_expression or flatten (or none of them): the reshaped data and counts.", {
    "result": any_value("the mapped, queried or flattened data (the data itself when no mode is set)"),
    "fields_mapped": f("integer", "how many output fields were mapped"),
    "fields_missing": f("array", "mapped fields that took their value from defaults", items={"type": "string"}),
})
JSON_TRANSFORM_OUTPUT: dict[str, Any] = {
    "description": "Open-ended with `template`: the rendered template itself (a dict template gives exactly its keys); "
                   "otherwise {result, fields_mapped, fields_missing}.",
    "anyOf": [any_value("the rendered template"), _RESHAPED],
}


def _json_transform_output(settings: dict[str, Any]) -> dict[str, Any] | None:
    if "template" in settings:
        return template_shape(settings["template"], "the rendered template")
    return _RESHAPED


@core_operator(
    "json-transform",
    "Reshape data: render a template with `data` in scope, or map/flatten/JMESPath-query it.",
    JSON_TRANSFORM_SCHEMA,
    lazy=("template",),
    lazy_names=("data",),
    output_schema=JSON_TRANSFORM_OUTPUT,
    output_for=_json_transform_output,
)
def json_transform(ctx: Any, cfg: dict[str, Any]) -> Any:
    data = cfg.get("data")
    if isinstance(data, str) and cfg.get("parse_json_strings", True):
        data = parse_json_text(data)
    template = ctx.lazy("template")
    if template is not None:
        return ctx.render(template, data=data)
    key = "jmespath_expression" if cfg.get("jmespath_expression") else "expression"
    expression = cfg.get(key)
    if expression:
        try:
            import jmespath
        except ImportError:  # pragma: no cover - jmespath is a core dependency
            raise config_error(ctx, key, "jmespath is not installed",
                               hint="pip install jmespath, or use `template`") from None
        try:
            result = jmespath.search(expression, data)
        except jmespath.exceptions.JMESPathError as exc:
            raise config_error(ctx, key, f"invalid JMESPath expression: {exc}",
                               hint="see https://jmespath.org for the syntax") from None
        return {"result": result, "fields_mapped": 1, "fields_missing": []}
    mapping = cfg.get("mapping")
    if mapping:
        defaults = cfg.get("defaults") or {}
        result: dict[str, Any] = {}
        missing: list[str] = []
        for out_field, path in mapping.items():
            value = get_path(data, path)
            if value is None and out_field in defaults:
                value = defaults[out_field]
                missing.append(out_field)
            result[out_field] = value
        for name in cfg.get("exclude_fields") or ():
            result.pop(name, None)
        return {"result": result, "fields_mapped": len(mapping), "fields_missing": missing}
    if cfg.get("flatten"):
        flat = _flatten(data)
        return {"result": flat, "fields_mapped": len(flat), "fields_missing": []}
    return {"result": data, "fields_mapped": 0, "fields_missing": []}


# ---------------------------------------------------------------- filter

FILTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {},
        "condition": {"type": "string", "description": "expression over `data` (or `item` in filter_array mode)"},
        "field_conditions": {"type": "object", "description": "{field: expected value}, all must match"},
        "filter_mode": {"type": "string", "enum": ["pass_fail", "filter_array"]},
        "invert": {"type": "boolean"},
        "pass_if_missing": {"type": "boolean"},
        "fail_on_reject": {"type": "boolean", "description": "fail the stage (stopping what depends on it) when data does not pass"},
    },
}

described(FILTER_SCHEMA, {
    "data": "the data to test", "filter_mode": "pass_fail (default) or filter_array (keep matching list items)",
    "invert": "pass when the condition does not hold", "pass_if_missing": "pass when the condition cannot be evaluated",
})

_DATA_NAME = re.compile(r"(?<![\w.'\"])data\b")


def _condition(ctx: Any, condition: str, pass_if_missing: bool, **names: Any) -> tuple[bool, str]:
    text = condition.strip()
    try:
        if "{{" in text and not (text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1):
            # `{{upstream.a.n}} > 3`: the earlier engine filled templates in before evaluating
            text = str(ctx.render(text, **names))
        value = ctx.evaluate(text, **names)
    except TemplateError as exc:
        if exc.message.startswith("invalid expression"):
            # a condition that does not parse is the author's mistake, whatever the data
            raise config_error(ctx, "condition", exc.message, hint=exc.hint) from None
        if pass_if_missing:
            return True, f"expression error (pass_if_missing): {exc.message}"
        return False, f"expression error: {exc.message}"
    return truthy(value), f"'{condition}' = {value!r}"


def _fields(cond: dict[str, Any], value: Any, pass_if_missing: bool) -> tuple[bool, str]:
    if not isinstance(value, dict):
        return False, "field_conditions need an object"
    for name, expected in cond.items():
        if name not in value:
            if pass_if_missing:
                continue
            return False, f"missing field '{name}'"
        if value[name] != expected:
            return False, f"field '{name}': expected {expected!r}, got {value[name]!r}"
    return True, "all field conditions matched"


@core_operator(
    "filter",
    "Pass or block data on a condition over `data`, or keep the list items whose condition over `item` holds.",
    FILTER_SCHEMA,
    lazy=("condition",),
    lazy_names=("data", "item"),
    output_schema=obj("Whether the data passed, and the data.", {
        "passed": f("boolean", "the condition held (filter_array: at least one item kept)"),
        "data": any_value("the data when it passed (null when not); filter_array: the kept items"),
        "filtered_count": f("integer", "items dropped (filter_array mode), else 0"),
        "reason": f("string", "why it passed or not, in words"),
    }),
)
def filter_data(ctx: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    data = cfg.get("data")
    condition = ctx.lazy("condition")
    if condition is not None and not isinstance(condition, str):
        raise config_error(ctx, "condition", f"must be an expression string, got {type(condition).__name__}",
                           hint="e.g. \"data.get('score', 0) > 0.8\"")
    fields = cfg.get("field_conditions")
    invert = truthy(cfg.get("invert", False))
    lenient = truthy(cfg.get("pass_if_missing", False))

    def test(**names: Any) -> tuple[bool, str]:
        if condition:
            return _condition(ctx, condition, lenient, **names)
        if fields:
            return _fields(fields, next(iter(names.values())), lenient)
        return True, "no condition given"

    if cfg.get("filter_mode") == "filter_array" and isinstance(data, list):
        if condition and _DATA_NAME.search(condition):
            raise config_error(ctx, "condition", "filter_array mode tests each element as `item`, not `data`",
                               hint="write the condition per element, e.g. \"item.get('status') == 'active'\"")
        kept = [item for item in data if test(item=item)[0] != invert]
        dropped = len(data) - len(kept)
        return {"passed": bool(kept), "data": kept, "filtered_count": dropped,
                "reason": f"kept {len(kept)} of {len(data)} items"}
    passed, reason = test(data=data)
    if invert:
        passed, reason = not passed, f"(inverted) {reason}"
    if not passed and cfg.get("fail_on_reject"):
        raise StageError(f"data did not pass the filter: {reason}", stage=ctx.stage.id, field="config.condition",
                         hint="fix the data upstream, or drop fail_on_reject and branch on `passed`")
    return {"passed": passed, "data": data if passed else None, "filtered_count": 0, "reason": reason}


# ---------------------------------------------------------------- loop

LOOP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {"type": "array"},
        "batch_size": {"type": "integer", "minimum": 1, "maximum": 100_000},
        "max_iterations": {"type": "integer", "minimum": 1},
        "start_index": {"type": "integer", "minimum": 0},
        "include_metadata": {"type": "boolean"},
    },
}


described(LOOP_SCHEMA, {
    "items": "the list to split", "batch_size": "items per batch (default 1)",
    "max_iterations": "at most this many batches", "start_index": "skip the items before this one",
    "include_metadata": "add metadata to the output (default true)",
})


@core_operator(
    "loop",
    "Split a list into batches (batch_size, start_index, max_iterations); foreach runs stages per item.",
    LOOP_SCHEMA,
    output_schema=obj("The batches.", {
        "batches": f("array", "lists of at most batch_size items", items={"type": "array"}),
        "total_items": f("integer", "items in the input list"),
        "total_batches": f("integer", "batches made"),
        "has_more": f("boolean", "items remain after max_iterations"),
        "metadata": f("object", "start_index, batch_size, items_processed, items_remaining (empty without include_metadata)"),
    }),
)
def loop_batches(ctx: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    items = cfg["items"]
    size = int(cfg.get("batch_size") or 1)
    start = int(cfg.get("start_index") or 0)
    limit = cfg.get("max_iterations")
    stop = len(items) if limit is None else min(len(items), start + int(limit) * size)
    batches = [items[i:i + size] for i in range(start, stop, size)]
    processed = min(stop, len(items)) if batches else min(start, len(items))
    metadata = {}
    if cfg.get("include_metadata", True):
        metadata = {"start_index": start, "batch_size": size, "items_processed": processed,
                    "items_remaining": len(items) - processed}
    return {"batches": batches, "total_items": len(items), "total_batches": len(batches),
            "has_more": processed < len(items), "metadata": metadata}


# ---------------------------------------------------------------- schema-validate

SCHEMA_VALIDATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    # one of the two (the earlier operator's name and the newer one)
    "anyOf": [{"required": ["schema"]}, {"required": ["json_schema"]}],
    "properties": {
        "data": {},
        "schema": {"type": "object"},
        "json_schema": {"type": "object"},
        "strict": {"type": "boolean", "description": "fail the stage when the data is invalid (default true)"},
        "coerce_types": {"type": "boolean"},
        "collect_all_errors": {"type": "boolean"},
        "check_formats": {"type": "boolean", "description": "assert `format` (uri, email, ...); off by default, as before"},
    },
}

described(SCHEMA_VALIDATE_SCHEMA, {
    "data": "the data to check", "schema": "the JSON Schema (json_schema: the same)",
    "json_schema": "the JSON Schema (schema: the same)",
    "coerce_types": "nudge strings and numbers to the schema's types first",
    "collect_all_errors": "accepted for old files: the first error is reported",
})


def coerce(value: Any, schema: Any) -> Any:
    """Nudge strings/numbers towards the schema's types before validating (the earlier `coerce_types`)."""
    if not isinstance(schema, dict):
        return value
    kind = schema.get("type")
    try:
        if kind == "string" and not isinstance(value, str) and value is not None:
            return value if isinstance(value, (dict, list)) else str(value)
        if kind == "integer" and isinstance(value, (str, float)) and not isinstance(value, bool):
            as_float = float(value)
            return int(as_float) if as_float.is_integer() else value
        if kind == "number" and isinstance(value, str):
            return float(value)
        if kind == "boolean" and isinstance(value, str):
            low = value.strip().lower()
            return True if low in ("true", "1", "yes") else False if low in ("false", "0", "no", "") else value
    except ValueError:
        return value
    if kind == "object" and isinstance(value, dict):
        props = schema.get("properties") or {}
        return {k: coerce(v, props[k]) if k in props else v for k, v in value.items()}
    if kind == "array" and isinstance(value, list):
        return [coerce(v, schema.get("items") or {}) for v in value]
    return value


@core_operator(
    "schema-validate",
    "Check data against a JSON Schema; strict (default) fails the stage on invalid data.",
    SCHEMA_VALIDATE_SCHEMA,
    output_schema=obj("The verdict and the data.", {
        "valid": f("boolean", "the data matches the schema"),
        "data": any_value("the data checked (coerced when coerce_types is set)"),
        "errors": f("array", "at most one {message} naming the first mismatch", items={"type": "object"}),
        "error_count": f("integer", "0 or 1"),
    }),
)
def schema_validate(ctx: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    from flowmason.kernel.schemas import compile_schema

    key = "schema" if cfg.get("schema") is not None else "json_schema"
    schema = cfg.get(key)
    if schema is None:
        raise config_error(ctx, "schema", "missing required config 'schema' for component 'schema-validate'",
                           hint="add \"schema\": a JSON Schema object")
    data = cfg.get("data")
    if cfg.get("coerce_types"):
        data = coerce(data, schema)
    try:
        compiled = compile_schema(schema, assert_formats=bool(cfg.get("check_formats")))
    except ValueError as exc:
        raise config_error(ctx, key, str(exc), hint="fix the JSON Schema (https://json-schema.org)") from None
    err = compiled.first_error(data)
    errors = [{"message": err}] if err else []
    if err and cfg.get("strict", True):
        raise StageError(f"data does not match the schema: {err}", stage=ctx.stage.id, field="config.data",
                         hint="fix the data upstream, or set strict: false to branch on `valid`")
    return {"valid": not errors, "data": data, "errors": errors, "error_count": len(errors)}


# ---------------------------------------------------------------- merge

MERGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sources": {"type": "array", "description": "objects merged left to right (later wins); nulls are skipped"},
        "inputs": {"type": "array"},
        "strategy": {"type": "string", "enum": ["deep", "shallow", "concat"]},
    },
}


described(MERGE_SCHEMA, {
    "inputs": "the same as sources (older name)", "strategy": "deep (default), shallow, or concat (lists)",
})


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@core_operator(
    "merge",
    "Merge objects left to right (deep or shallow), or concatenate lists; null sources (skipped branches) are ignored.",
    MERGE_SCHEMA,
    output_schema=any_value("Open-ended: the merged object (its fields are the sources' fields), or with strategy "
                            "'concat' the concatenated list."),
)
def merge(ctx: Any, cfg: dict[str, Any]) -> Any:
    key = "sources" if cfg.get("sources") is not None else "inputs"
    sources = [s for s in (cfg.get(key) or []) if s is not None]
    strategy = cfg.get("strategy") or "deep"
    if strategy == "concat":
        out: list[Any] = []
        for s in sources:
            out.extend(s if isinstance(s, list) else [s])
        return out
    merged: dict[str, Any] = {}
    for i, s in enumerate(sources):
        if not isinstance(s, dict):
            raise config_error(ctx, f"{key}[{i}]", f"cannot merge a {type(s).__name__} into an object",
                               hint="give objects, or use strategy 'concat' for lists")
        merged = deep_merge(merged, s) if strategy == "deep" else {**merged, **s}
    return merged


# ---------------------------------------------------------------- text-template

TEXT_TEMPLATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["template"],
    "properties": {
        "template": {"type": "string"},
        "values": {"type": "object", "description": "names available in the template besides input/upstream/..."},
        "strip": {"type": "boolean"},
    },
}


described(TEXT_TEMPLATE_SCHEMA, {
    "template": "text with {{...}} templates", "values": TEXT_TEMPLATE_SCHEMA["properties"]["values"]["description"],
    "strip": "trim whitespace around the result",
})


def _template_names(settings: dict[str, Any]) -> list[str]:
    values = settings.get("values")
    if values is None:
        return []
    return [str(k) for k in values] if isinstance(values, dict) else ["*"]  # "*": names known only at run time


@core_operator(
    "text-template",
    "Render a text template ({{...}}) with extra `values` in scope; outputs {text}.",
    TEXT_TEMPLATE_SCHEMA,
    lazy=("template",),
    lazy_names=_template_names,
    output_schema=obj("The rendered text.", {
        "text": f("string", "the rendered template (objects and lists as JSON)"),
        "length": f("integer", "characters in text"),
    }),
)
def text_template(ctx: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    template = ctx.lazy("template")
    if not isinstance(template, str):
        raise config_error(ctx, "template", f"must be a string, got {type(template).__name__}",
                           hint="use json-transform to build structured values")
    values = cfg.get("values") or {}
    if not isinstance(values, dict):
        raise config_error(ctx, "values", f"must be an object, got {type(values).__name__}")
    text = ctx.render(template, **{str(k): v for k, v in values.items()})
    if isinstance(text, (dict, list, bool)):  # a whole-value template keeps its type; render it as text does
        text = json.dumps(text, default=str, ensure_ascii=False)
    elif not isinstance(text, str):
        text = "" if text is None else str(text)
    if cfg.get("strip"):
        text = text.strip()
    return {"text": text, "length": len(text)}


COMPONENTS = (json_transform, filter_data, loop_batches, schema_validate, merge, text_template)
