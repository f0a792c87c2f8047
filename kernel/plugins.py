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

The manager is strict: a hookimpl whose name is no hook in hookspecs.py
(``fm_stage_finsihed``) or whose arguments are not the hook's is refused
with a ``PluginError`` naming the plugin, the hook and the closest real
hook, when the manager is built and when a plugin is registered at run
time. ``FM_TRACE_PLUGINS=1`` prints every hook call to stderr.

Order: registration hooks run plugin by plugin in registration order
(``DEFAULT_PLUGINS`` order, then entry points, then plugins registered at
run time); ``tryfirst``/``trylast`` on a hookimpl move it to the front or
the back. Where one answer wins (authenticators), the earliest wins.
Notification hooks (``fm_stage_event`` ...) are called by pluggy in its
own order (last registered first); they must not depend on each other.
"""
from __future__ import annotations

import importlib
import sys
import threading
import time
from typing import Any, Callable, Iterator

import pluggy

from . import hookspecs
from .errors import ComponentNotFoundError, PluginError
from .settings import get_settings

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
    ("cassettes", "flowmason.plugins.cassettes"),
    ("ai_nodes", "flowmason.plugins.ai_nodes"),
    ("core_cli", "flowmason.plugins.core_cli"),
    ("store_cli", "flowmason.plugins.store_cli"),
    ("testing", "flowmason.plugins.testing"),
    ("durable", "flowmason.plugins.durable"),
    ("http_api", "flowmason.plugins.http_api"),
    ("auth", "flowmason.plugins.auth"),  # inert unless FM_AUTH=1
    ("ratelimit", "flowmason.plugins.ratelimit"),  # inert unless FM_RATELIMIT=LIMIT/SECONDS
    ("saml", "flowmason.plugins.saml"),  # inert unless FM_SAML_CONFIG names a config file
    ("timetravel", "flowmason.plugins.timetravel"),
    ("debugger", "flowmason.plugins.debugger"),
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
        _register(pm, importlib.import_module(module), name)
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
            _register(pm, plugin, ep.name)
            dist = getattr(ep, "dist", None)
            sources[ep.name] = f"{dist.name} {dist.version}" if dist else ep.value
    requested = (only or set()) | add
    missing = requested - {n for n, _ in pm.list_name_plugin()}
    if missing:
        raise PluginError(
            f"unknown plugin(s): {', '.join(sorted(missing))}",
            hint="`fm plugins` lists what is available",
        )
    check_requires(pm)
    check_pending(pm)
    if get_settings().trace_plugins:
        trace_hook_calls(pm)
    return pm


def check_requires(pm: pluggy.PluginManager) -> None:
    """A plugin's ``REQUIRES`` (names of plugins it imports) must be loaded too: say which, and how to fix it."""
    loaded = {name for name, plugin in pm.list_name_plugin() if plugin is not None}
    for name, plugin in pm.list_name_plugin():
        needs = [n for n in getattr(plugin, "REQUIRES", ()) if n not in loaded]
        if needs:
            raise PluginError(
                f"plugin '{name}' requires {', '.join(repr(n) for n in needs)}, which "
                f"{'is' if len(needs) == 1 else 'are'} not loaded",
                hint=f"load {' and '.join(needs)} too (FM_PLUGINS=+{needs[0]}), or leave out {name} (FM_PLUGINS=-{name})",
            )


def _register(pm: pluggy.PluginManager, plugin: Any, name: str | None) -> None:
    """``pm.register`` with pluggy's refusal (bad hook arguments) turned into a message naming the plugin."""
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        label = name or getattr(plugin, "__name__", None) or f"{type(plugin).__module__}.{type(plugin).__qualname__}"
        detail = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise PluginError(f"plugin '{label}' has a bad hook implementation: {detail}",
                          hint="match the hook's arguments in flowmason.kernel.hookspecs") from None


def _label(pm: pluggy.PluginManager, plugin: Any) -> str:
    """A plugin's name for messages: its registered name, else its module or class (pluggy names objects by id)."""
    name = pm.get_name(plugin)
    if name and name != str(id(plugin)):
        return name
    return getattr(plugin, "__name__", None) or f"{type(plugin).__module__}.{type(plugin).__qualname__}"


def check_pending(pm: pluggy.PluginManager) -> None:
    """Refuse hookimpls that match no hook spec: a misspelt name would otherwise never be called."""
    specs = sorted(n for n, c in vars(pm.hook).items() if isinstance(c, pluggy.HookCaller) and c.has_spec())
    for name, caller in vars(pm.hook).items():
        if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            import difflib

            plugin = _label(pm, impl.plugin)
            close = difflib.get_close_matches(name, specs, n=1)
            raise PluginError(
                f"plugin '{plugin}' implements '{name}', which is not a FlowMason hook",
                field=name,
                hint=(f"did you mean '{close[0]}'?" if close else "the hooks are listed in flowmason.kernel.hookspecs")
                + " (mark a hook of another host with @hookimpl(optionalhook=True))",
            )
    pm.check_pending()  # pluggy's own check, in case it learns more than the loop above


def trace_hook_calls(pm: pluggy.PluginManager, write: Callable[[str], Any] | None = None) -> Callable[[], None]:
    """Print each hook call, the plugins it reaches, its duration and outcome (``FM_TRACE_PLUGINS=1``).

    Returns the function that stops tracing.
    """
    out = write or (lambda line: print(line, file=sys.stderr, flush=True))
    started: list[float] = []

    def names(impls: list[Any]) -> str:
        return ", ".join(pm.get_name(i.plugin) or repr(i.plugin) for i in impls)

    def args(kwargs: dict[str, Any]) -> str:
        # values are short reprs: a Run or a pipeline would flood the terminal
        return ", ".join(f"{k}={_short(v)}" for k, v in kwargs.items())

    def before(hook_name: str, impls: list[Any], kwargs: dict[str, Any]) -> None:
        started.append(time.perf_counter())
        out(f"fm-trace: {hook_name}({args(kwargs)}) -> [{names(impls)}]")

    def after(outcome: Any, hook_name: str, impls: list[Any], kwargs: dict[str, Any]) -> None:
        ms = (time.perf_counter() - started.pop()) * 1000 if started else 0.0
        exc = outcome.exception
        result = f"raised {type(exc).__name__}: {exc}" if exc is not None else f"returned {_short(outcome.get_result())}"
        out(f"fm-trace: {hook_name} {result} in {ms:.2f} ms")

    return pm.add_hookcall_monitoring(before, after)


def _short(value: Any, limit: int = 60) -> str:
    text = value.__name__ if callable(value) and hasattr(value, "__name__") else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def get_plugin_manager() -> pluggy.PluginManager:
    global _pm
    with _lock:
        if _pm is None:
            _pm = build_plugin_manager(get_settings().plugins)
        return _pm


def reset(spec: str | None = None, *, extra: list[Any] | None = None) -> pluggy.PluginManager:
    """Rebuild the plugin manager (``fm --plugins``, tests, benchmarks)."""
    global _pm, _registry
    with _lock:
        _pm = build_plugin_manager(spec if spec is not None else get_settings().plugins)
        for plugin in extra or []:
            _register_checked(_pm, plugin, None)
        _registry = None
        return _pm


def register_plugin(plugin: Any, name: str | None = None) -> None:
    """Register an extra plugin object at run time (tests, embedding, benchmarks)."""
    global _registry
    with _lock:
        _register_checked(get_plugin_manager(), plugin, name)
        _registry = None


def _register_checked(pm: pluggy.PluginManager, plugin: Any, name: str | None) -> None:
    """Register at run time and refuse it (leaving the manager as it was) when a hookimpl matches no hook."""
    _register(pm, plugin, name)
    try:
        check_pending(pm)
    except PluginError:
        pm.unregister(plugin)
        raise


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


def each_plugin(pm: pluggy.PluginManager, hook_name: str) -> Iterator[tuple[str, pluggy.HookCaller]]:
    """``(plugin name, caller)`` per implementing plugin, in the documented order, for registration hooks.

    pluggy calls a hook's implementations last-registered first and hands
    them all the same arguments, so a shared ``register`` could not tell
    which plugin registered what. Calling each plugin through
    ``subset_hook_caller`` keeps pluggy's caller in the path (tracing and
    hook-call monitoring see registration; wrappers still wrap) while the
    host gives each plugin its own ``register`` and its own order.
    """
    hook = getattr(pm.hook, hook_name)
    impls = hook.get_hookimpls()  # registration order, trylast first and tryfirst last
    plain = [i for i in impls if not (i.wrapper or i.hookwrapper)]
    ordered = sorted(plain, key=lambda i: 0 if i.tryfirst else 2 if i.trylast else 1)  # stable: keeps registration order
    for impl in ordered:
        others = [i.plugin for i in plain if i.plugin is not impl.plugin]
        yield pm.get_name(impl.plugin) or repr(impl.plugin), pm.subset_hook_caller(hook_name, others)


def _collect(pm: pluggy.PluginManager, hook_name: str, registry: Registry, kind: str, target: dict) -> None:
    for plugin_name, call in each_plugin(pm, hook_name):

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

        call_plugin(plugin_name, hook_name, call, register=register)


def call_plugin(plugin: str, hook_name: str, call: Callable[..., Any], **kwargs: Any) -> Any:
    """Call one plugin's hook; a crash inside it becomes a PluginError that says which plugin and hook."""
    from .errors import FlowMasonError

    try:
        return call(**kwargs)
    except FlowMasonError:
        raise  # already says what is wrong (a duplicate name, a bad setting)
    except Exception as exc:  # noqa: BLE001 - a third-party plugin's bug must name the plugin
        raise PluginError(f"plugin '{plugin}' failed in {hook_name}: {type(exc).__name__}: {exc}",
                          hint=f"fix or remove the plugin ('FM_PLUGINS=-{plugin}' leaves it out)") from exc


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
