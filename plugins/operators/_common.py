"""Helpers shared by the core operators: config checks, dotted paths, safe URLs.

The plan checks the literal parts of a stage's config against the
component's ``config_schema`` before a run (``fm validate``); values that
come from ``{{...}}`` templates can only be checked once rendered, so every
operator calls ``check_config`` on its rendered config first and gets the
same kind of error (stage + ``config.<key>`` + a fix) either way.
"""
from __future__ import annotations

import functools
import inspect
import re
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

from flowmason.kernel.errors import ConfigError
from flowmason.kernel.schemas import CompiledSchema, compile_schema

_compiled: dict[tuple[int, str], CompiledSchema] = {}


def config_error(ctx: Any, key: str, message: str, hint: str | None = None) -> ConfigError:
    """A ConfigError naming this stage and ``config.<key>``."""
    return ConfigError(message, pipeline=ctx.pipeline.key, stage=ctx.stage.id, field=f"config.{key}", hint=hint)


def check_config(ctx: Any, schema: Mapping[str, Any], component: str) -> dict[str, Any]:
    """Check the rendered config against ``schema``; returns it. Lazy keys are not in ``ctx.config``."""
    cfg = ctx.config
    for key in schema.get("required", ()):
        if cfg.get(key) is None and ctx.lazy(key) is None:
            raise config_error(ctx, key, f"missing required config '{key}' for component '{component}'",
                               hint=f"add \"{key}\" to the stage's config")
    props = schema.get("properties", {})
    for key, value in cfg.items():
        sub = props.get(key)
        if sub is None or value is None:
            continue
        # compiled validators are cached per (schema object, key): schemas are module constants
        ck = (id(schema), key)
        validator = _compiled.get(ck)
        if validator is None:
            validator = _compiled[ck] = compile_schema(sub)
        err = validator.first_error(value)
        if err:
            raise config_error(ctx, key, f"config '{key}' {err}", hint=f"see `fm schema --component {component}`")
    return cfg


_PART = re.compile(r"\[(-?\d+)\]|([^.\[\]]+)")


def get_path(data: Any, path: str) -> Any:
    """``user.name``, ``items[0].id`` in nested dicts and lists; None when any step is missing."""
    current = data
    for index, key in _PART.findall(path):
        if current is None:
            return None
        if index:
            i = int(index)
            if not isinstance(current, (list, tuple)) or not -len(current) <= i < len(current):
                return None
            current = current[i]
        elif isinstance(current, Mapping):
            current = current.get(key)
        elif isinstance(current, (list, tuple)) and key.lstrip("-").isdigit():
            i = int(key)
            current = current[i] if -len(current) <= i < len(current) else None
        else:
            return None
    return current


def safe_url(url: str, *, keep_query: bool = False) -> str:
    """The URL without credentials (and query string, unless asked), fit for a message or a log line."""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<invalid url>"
    return urlunsplit((parts.scheme, host, parts.path, parts.query if keep_query else "", ""))


def core_operator(
    name: str,
    description: str,
    schema: dict[str, Any],
    *,
    lazy: tuple[str, ...] = (),
    output_schema: dict[str, Any] | None = None,
    output_for: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    lazy_names: Any = (),
) -> Callable[[Callable[..., Any]], Any]:
    """``@operator`` for this plugin: registers ``schema`` and ``output_schema`` (what it returns, see
    kernel/outputs.py) and calls ``fn(ctx, cfg)`` with the checked config."""
    from flowmason.kernel.components import operator

    def wrap(fn: Callable[..., Any]) -> Any:
        if inspect.iscoroutinefunction(fn):
            async def run(ctx: Any) -> Any:
                return await fn(ctx, check_config(ctx, schema, name))
        else:
            def run(ctx: Any) -> Any:
                return fn(ctx, check_config(ctx, schema, name))
        functools.update_wrapper(run, fn)
        return operator(name, description=description, config_schema=schema, output_schema=output_schema,
                        output_for=output_for, lazy=lazy, lazy_names=lazy_names, category="core")(run)

    return wrap


def network_reason(exc: BaseException) -> str:
    """The most telling words for a failed request: the OS error at the bottom of httpx's chain.

    httpx says "All connection attempts failed"; the OSError underneath says
    "Connection refused" or "Name or service not known", which is what a user can act on.
    """
    import os
    import socket

    reason = str(exc) or type(exc).__name__
    current: BaseException | None = exc
    for _ in range(16):  # exception chains are short; bound the walk anyway
        if current is None:
            break
        if isinstance(current, socket.gaierror) and current.strerror:
            reason = current.strerror
        elif isinstance(current, OSError) and current.errno and current.errno > 0:
            reason = os.strerror(current.errno)
        current = current.__cause__ or current.__context__
    return reason
