"""Run-scoped state and side channels: variable-set, variable-get, logger, delay.

Variables live in ``ctx.variables`` (one dict per run; a sub-pipeline has
its own) and read as ``{{variables.name}}`` in any later stage, or through
``variable-get``. Order comes from ``depends_on`` like everything else: a
stage that reads a variable should depend on the stage that sets it.
Stages of a parallel foreach share the run's variables; the last write
wins.

``variable-set`` takes the earlier operator's ``name`` + ``value`` (with
``extract_path``, ``overwrite``) and the templates' ``variables`` object
(``values`` in some gallery files). Its output carries ``variables`` (what
it set), which the templates read as
``{{upstream.set-vars.variables.total_docs}}``.
"""
from __future__ import annotations

import datetime as _dt
import re
import uuid
from typing import Any

from flowmason.kernel.errors import StageError

from flowmason.kernel.outputs import any_value, described, f, obj

from ._common import config_error, core_operator, get_path

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME_SCHEMA = {"type": "string", "pattern": _NAME.pattern}

VARIABLE_SET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": NAME_SCHEMA,
        "value": {},
        "variables": {"type": "object", "propertyNames": NAME_SCHEMA},
        "values": {"type": "object", "propertyNames": NAME_SCHEMA},
        "extract_path": {"type": "string", "description": "dotted path into value (response.items[0].id)"},
        "overwrite": {"type": "boolean"},
        "scope": {"type": "string", "description": "accepted for old files; variables are always run-scoped"},
    },
}


described(VARIABLE_SET_SCHEMA, {
    "name": "one variable's name", "value": "its value", "variables": "name -> value, to set several",
    "values": "the same as variables (older name)", "extract_path": VARIABLE_SET_SCHEMA["properties"]["extract_path"]["description"],
    "overwrite": "replace a variable already set (default true)", "scope": "accepted for old files; variables are run-scoped",
})


@core_operator(
    "variable-set",
    "Set run-scoped variables (name + value, or a `variables` object); read them as {{variables.x}}.",
    VARIABLE_SET_SCHEMA,
    output_schema=obj("What was set.", {
        "variables": f("object", "name -> value of every variable this stage set (or kept, without overwrite)"),
        "previous": f("object", "name -> value before, for the variables that already existed"),
        "was_set": f("boolean", "at least one variable was written"),
        "name": f("string", "with `name`: the variable's name"),
        "value": any_value("with `name`: its value now"),
        "previous_value": any_value("with `name`: its value before (null if it was not set)"),
    }, required=["variables", "previous", "was_set"]),
)
def variable_set(ctx: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    single = cfg.get("name")
    if single is not None:
        value = cfg.get("value")
        if cfg.get("extract_path"):
            value = get_path(value, cfg["extract_path"])
        wanted = {single: value}
    else:
        key = "variables" if cfg.get("variables") is not None else "values"
        wanted = cfg.get(key)
        if not wanted:
            raise config_error(ctx, "variables", "nothing to set",
                               hint="give \"name\" and \"value\", or a \"variables\" object")
    store = ctx.variables
    overwrite = cfg.get("overwrite", True)
    done: dict[str, Any] = {}
    previous: dict[str, Any] = {}
    for name, value in wanted.items():
        if name in store:
            previous[name] = store[name]
            if not overwrite:
                done[name] = store[name]
                continue
        store[name] = value
        done[name] = value
    was_set = overwrite or len(previous) < len(wanted)
    out: dict[str, Any] = {"variables": done, "previous": previous, "was_set": was_set}
    if single is not None:
        out.update(name=single, value=done[single], previous_value=previous.get(single))
    return out


VARIABLE_GET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": NAME_SCHEMA,
        "names": {"type": "array", "items": NAME_SCHEMA},
        "default": {},
    },
}


described(VARIABLE_GET_SCHEMA, {
    "name": "the variable to read", "names": "several variables to read", "default": "the value of a variable not set",
})


@core_operator(
    "variable-get",
    "Read run-scoped variables set by variable-set (name -> value; names -> variables).",
    VARIABLE_GET_SCHEMA,
    output_schema=obj("The values read: {name, value, found} with `name`, {variables, missing} with `names`.", {
        "name": f("string", "with `name`: the variable read"),
        "value": any_value("with `name`: its value (the default when not set)"),
        "found": f("boolean", "with `name`: it was set"),
        "variables": f("object", "with `names`: name -> value"),
        "missing": f("array", "with `names`: the names not set (given the default)", items={"type": "string"}),
    }, required=[]),
)
def variable_get(ctx: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    store = ctx.variables
    has_default = "default" in ctx.stage.settings()
    default = cfg.get("default")
    if cfg.get("names") is not None:
        names = cfg["names"]
        missing = [n for n in names if n not in store]
        if missing and not has_default:
            raise _unset(ctx, "names", missing, store)
        return {"variables": {n: store.get(n, default) for n in names}, "missing": missing}
    name = cfg.get("name")
    if name is None:
        raise config_error(ctx, "name", "missing required config 'name' for component 'variable-get'",
                           hint="add \"name\": the variable to read (or \"names\": a list)")
    if name not in store and not has_default:
        raise _unset(ctx, "name", [name], store)
    return {"name": name, "value": store.get(name, default), "found": name in store}


def _unset(ctx: Any, key: str, missing: list[str], store: dict[str, Any]) -> StageError:
    known = ", ".join(sorted(store)) or "none yet"
    return StageError(
        f"variable(s) not set: {', '.join(missing)} (set so far: {known})", stage=ctx.stage.id, field=f"config.{key}",
        hint="make this stage depend on the variable-set stage that sets it, or give a \"default\"",
    )


LOGGER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["message"],
    "properties": {
        "message": {"type": ["string", "number", "boolean"]},
        "level": {"type": "string", "enum": ["debug", "info", "warning", "warn", "error", "critical"]},
        "data": {},
        "tags": {"type": "object"},
        "passthrough": {},
        "emit_to_trace": {"type": "boolean"},
    },
}


described(LOGGER_SCHEMA, {
    "message": "what to log", "level": "debug, info (default), warning, error or critical",
    "data": "data logged with it", "tags": "name -> value labels", "passthrough": "a value handed on in the output",
    "emit_to_trace": "accepted for old files: every log line is an event",
})


@core_operator(
    "logger",
    "Log a message (with data and tags) to the run's event stream; outputs what it logged.",
    LOGGER_SCHEMA,
    output_schema=obj("What was logged.", {
        "logged": f("boolean", "always true"),
        "log_id": f("string", "an id for this log line (also in the event's data)"),
        "level": f("string", "debug, info, warning, error or critical"),
        "message": f("string", "the message"),
        "data": any_value("the `data` config, as logged"),
        "tags": f(["object", "null"], "the `tags` config"),
        "timestamp": f("string", "when, ISO 8601 UTC"),
        "passthrough": any_value("the `passthrough` config, handed on unchanged"),
    }),
)
def logger(ctx: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    level = str(cfg.get("level") or "info").lower()
    level = "warning" if level == "warn" else level
    message = str(cfg["message"])
    log_id = uuid.uuid4().hex[:8]
    extra: dict[str, Any] = {"log_id": log_id}
    for key in ("data", "tags"):
        if cfg.get(key) is not None:
            extra[key] = cfg[key]
    ctx.log(level, message, **extra)
    return {
        "logged": True,
        "log_id": log_id,
        "level": level,
        "message": message,
        "data": cfg.get("data"),
        "tags": cfg.get("tags"),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "passthrough": cfg.get("passthrough"),
    }


DELAY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "ms": {"type": "number", "minimum": 0, "maximum": 3_600_000},
        "duration_ms": {"type": "number", "minimum": 0, "maximum": 3_600_000},
        "seconds": {"type": "number", "minimum": 0, "maximum": 3_600},
        "passthrough": {},
    },
}


described(DELAY_SCHEMA, {
    "ms": "milliseconds to wait", "duration_ms": "the same as ms", "seconds": "seconds to wait",
    "passthrough": "a value handed on in the output",
})


@core_operator(
    "delay",
    "Wait a while (ms, duration_ms or seconds; at most an hour), then pass `passthrough` on.",
    DELAY_SCHEMA,
    output_schema=obj("How long it waited.", {
        "waited_ms": f("number", "milliseconds waited"),
        "passthrough": any_value("the `passthrough` config, handed on unchanged"),
    }),
)
async def delay(ctx: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    if cfg.get("seconds") is not None:
        ms = float(cfg["seconds"]) * 1000
    else:
        ms = float(cfg.get("ms", cfg.get("duration_ms")) or 0)
    await asyncio.sleep(ms / 1000)
    return {"waited_ms": ms, "passthrough": cfg.get("passthrough")}


COMPONENTS = (variable_set, variable_get, logger, delay)
