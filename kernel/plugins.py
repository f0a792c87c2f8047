"""The plugin manager and the registries built from it.

Built-in features are plugins too, listed by module name in
``DEFAULT_PLUGINS`` and registered like third-party ones, which come
through the ``flowmason`` entry-point group. ``FM_PLUGINS`` (or
``fm --plugins``) names a subset, for small devices: ``FM_PLUGINS=operators,control_flow``
loads just those; ``FM_PLUGINS=+extra`` adds to the defaults;
``FM_PLUGINS=-name`` removes one.

Registries (components, providers, storage backends, ...) are filled once
per process by calling the registration hooks, so the hot path never calls
a hook to find a component.
"""
from __future__ import annotations

import importlib
import os
import threading
from typing import Any

import pluggy

from . import hookspecs
from .errors import ComponentNotFoundError, PluginError

hookimpl = pluggy.HookimplMarker("flowmason")

ENTRY_POINT_GROUP = "flowmason"

# short name -> module; order is registration order
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("control_flow", "flowmason.plugins.control_flow"),
    ("inheritance", "flowmason.plugins.inheritance"),
    ("loaders", "flowmason.plugins.loaders"),
    ("operators", "flowmason.plugins.operators"),
    ("sqlite_store", "flowmason.plugins.sqlite_store"),
    ("dynamodb_store", "flowmason.plugins.dynamodb_store"),
    ("providers", "flowmason.plugins.providers"),
    ("ai_nodes", "flowmason.plugins.ai_nodes"),
    ("core_cli", "flowmason.plugins.core_cli"),
    ("store_cli", "flowmason.plugins.store_cli"),
    ("testing", "flowmason.plugins.testing"),
    ("http_api", "flowmason.plugins.http_api"),
    ("auth", "flowmason.plugins.auth"),  # inert unless FM_AUTH=1
    ("ratelimit", "flowmason.plugins.ratelimit"),  # inert unless FM_RATELIMIT=LIMIT/SECONDS
    ("saml", "flowmason.plugins.saml"),  # inert unless FM_SAML_CONFIG names a config file
    ("timetravel", "flowmason.plugins.timetravel"),
    ("animation", "flowmason.plugins.animation"),
    ("promptdiff", "flowmason.plugins.promptdiff"),
    ("tracing", "flowmason.plugins.tracing"),
    ("events", "flowmason.plugins.events"),  # the run event log that hosts install
)

_lock = threading.RLock()
_pm: pluggy.PluginManager | None = None
_registry: "Registry | None" = None


def _selection(spec: str | None) -> tuple[set[str] | None, set[str], set[str]]:
    """Parse FM_PLUGINS: returns (only, add, remove); ``only`` None means defaults."""
    if not spec:
        return None, set(), set()
    only: set[str] = set()
    add: set[str] = set()
    remove: set[str] = set()
    for raw in spec.split(","):
        name = raw.strip()
        if not name:
            continue
        if name.startswith("+"):
            add.add(name[1:])
        elif name.startswith("-"):
            remove.add(name[1:])
        else:
            only.add(name)
    return (only or None), add, remove


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def _module_available(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def build_plugin_manager(spec: str | None = None) -> pluggy.PluginManager:
    """Create a plugin manager with the built-ins and entry points that ``spec`` selects."""
    pm = pluggy.PluginManager("flowmason")
    pm.add_hookspecs(hookspecs)
    sources: dict[str, str] = {}
    pm.fm_sources = sources  # type: ignore[attr-defined]  # name -> "builtin" | "dist version"
    only, add, remove = _selection(spec)
    known = {name for name, _ in DEFAULT_PLUGINS}
    for name, module in DEFAULT_PLUGINS:
        wanted = (only is None or name in only or name in add) and name not in remove
        if not wanted:
            continue
        if not _module_available(module):
            # a folder not yet present in a slim edge build: skip quietly unless asked by name
            if only is not None and name in only:
                raise PluginError(f"plugin '{name}' ({module}) is not installed", hint="check FM_PLUGINS")
            continue
        pm.register(importlib.import_module(module), name=name)
        sources[name] = "builtin"
    want_eps = only is None or bool(only - known) or bool(add - known)
    if want_eps:
        for ep in _entry_points():
            if ep.name in remove or pm.has_plugin(ep.name):
                continue
            if only is not None and ep.name not in only and ep.name not in add:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken third-party plugin must say who it is
                raise PluginError(
                    f"plugin '{ep.name}' failed to load: {exc}",
                    hint=f"fix or uninstall the package providing entry point {ep.value}",
                ) from exc
            pm.register(plugin, name=ep.name)
            dist = getattr(ep, "dist", None)
            sources[ep.name] = f"{dist.name} {dist.version}" if dist else ep.value
    requested = (only or set()) | add
    missing = requested - {n for n, _ in pm.list_name_plugin()}
    if missing:
        raise PluginError(
            f"unknown plugin(s): {', '.join(sorted(missing))}",
            hint="`fm plugins` lists what is available",
        )
    return pm


def get_plugin_manager() -> pluggy.PluginManager:
    global _pm
    with _lock:
        if _pm is None:
            _pm = build_plugin_manager(os.environ.get("FM_PLUGINS"))
        return _pm


def reset(spec: str | None = None, *, extra: list[Any] | None = None) -> pluggy.PluginManager:
    """Rebuild the plugin manager (``fm --plugins``, tests, benchmarks)."""
    global _pm, _registry
    with _lock:
        _pm = build_plugin_manager(spec if spec is not None else os.environ.get("FM_PLUGINS"))
        for plugin in extra or []:
            _pm.register(plugin)
        _registry = None
        return _pm


def register_plugin(plugin: Any, name: str | None = None) -> None:
    """Register an extra plugin object at run time (tests, embedding, benchmarks)."""
    global _registry
    with _lock:
        get_plugin_manager().register(plugin, name=name)
        _registry = None


def unregister_plugin(plugin: Any) -> None:
    global _registry
    with _lock:
        get_plugin_manager().unregister(plugin)
        _registry = None


# attribute -> (registration hook, kind shown in messages)
_KINDS = {
    "components": ("fm_register_components", "component"),
    "providers": ("fm_register_providers", "provider"),
    "storage_backends": ("fm_register_storage_backends", "storage backend"),
    "authenticators": ("fm_register_authenticators", "authenticator"),
    "rate_limiters": ("fm_register_rate_limiters", "rate limiter"),
    "triggers": ("fm_register_triggers", "trigger"),
    "codegen_targets": ("fm_register_codegen_targets", "codegen target"),
    "exporters": ("fm_register_exporters", "exporter"),
    "loaders": ("fm_register_loaders", "loader"),
}


class Registry:
    """What the registration hooks produced, keyed by name, with provenance.

    Each kind is collected the first time it is asked for, so `fm run` never
    wakes the plugins that only serve the HTTP API (authenticators, rate
    limiters) or other commands (exporters).
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm
        self._origin: dict[tuple[str, str], str] = {}

    @property
    def origin(self) -> dict[tuple[str, str], str]:
        """(kind, name) -> the plugin that registered it, over every kind."""
        self.load_all()
        return self._origin

    def __getattr__(self, attr: str) -> dict[str, Any]:
        spec = _KINDS.get(attr)
        if spec is None:
            raise AttributeError(attr)
        with _lock:
            if attr not in self.__dict__:
                target: dict[str, Any] = {}
                _collect(self._pm, spec[0], self, spec[1], target)
                self.__dict__[attr] = target
        return self.__dict__[attr]

    def load_all(self) -> "Registry":
        """Collect every kind (for `fm plugins`, which lists everything)."""
        for attr in _KINDS:
            getattr(self, attr)
        return self

    def component(self, name: str, *, stage: str | None = None, pipeline: str | None = None) -> Any:
        try:
            return self.components[name]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(name, self.components, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "`fm plugins` lists the available components"
            raise ComponentNotFoundError(
                f"unknown component type '{name}'",
                pipeline=pipeline,
                stage=stage,
                field="component_type",
                hint=hint,
            ) from None


def _collect(pm: pluggy.PluginManager, hook_name: str, registry: Registry, kind: str, target: dict) -> None:
    hook = getattr(pm.hook, hook_name)
    for impl in reversed(hook.get_hookimpls()):  # registration order
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)

        def register(name: Any, obj: Any = None, *, _plugin: str = plugin_name) -> None:
            if obj is None:  # register(component) form
                obj = name
                name = getattr(obj, "name", None)
                if not name:
                    raise PluginError(f"plugin '{_plugin}' registered a {kind} without a name")
            if name in target:
                first = registry._origin.get((kind, name), "?")
                raise PluginError(
                    f"{kind} '{name}' is registered twice: by plugin '{first}' and by plugin '{_plugin}'",
                    hint="uninstall one of the two plugins or rename the component",
                )
            target[name] = obj
            registry._origin[(kind, name)] = _plugin

        impl.function(register)


def get_registry() -> Registry:
    global _registry
    with _lock:
        if _registry is None:
            _registry = Registry(get_plugin_manager())
        return _registry


def describe_plugins(pm: pluggy.PluginManager | None = None) -> list[dict[str, Any]]:
    """For `fm plugins`: each loaded plugin, where it comes from, and the hooks it implements."""
    pm = pm or get_plugin_manager()
    sources = getattr(pm, "fm_sources", {})
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        out.append(
            {
                "name": name,
                "module": getattr(plugin, "__name__", type(plugin).__name__),
                "source": sources.get(name, "runtime"),
                "hooks": hooks,
            }
        )
    return out


def has_impls(hook_name: str) -> bool:
    """True when some plugin implements this hook (the executor skips empty event hooks)."""
    return bool(getattr(get_plugin_manager().hook, hook_name).get_hookimpls())
