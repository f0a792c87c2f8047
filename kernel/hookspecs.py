"""Every extension point of FlowMason, grouped by phase.

Plugins implement these with `@hookimpl` (from `flowmason` or
`flowmason.kernel.plugins`). Registration hooks hand the plugin a
`register(...)` callback instead of asking it to return lists, so the host
controls names, duplicates and provenance (the plugin that registered each
thing). The registries they fill are built once per process (see
`plugins.Registry`) and resolved once per run, never per stage call.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("flowmason")

# -- registration: called once per process, when the registry is first built --


@hookspec
def fm_register_components(register):
    """Register components (AI nodes, operators, control flow).

    Call ``register(component)`` with objects made by the decorators in
    ``flowmason.kernel.components`` (``@component``, ``@operator``,
    ``@node``, ``@control_flow``). A second component with the same name is
    an error that names both plugins.
    """


@hookspec
def fm_register_providers(register):
    """Register LLM providers: ``register(name, factory)``.

    ``factory(settings: dict)`` returns an object with the provider
    interface of ``flowmason.kernel.providers``. Called once; the factory is
    called lazily, the first time a run needs that provider, so a heavy SDK
    is imported only then.
    """


@hookspec
def fm_register_storage_backends(register):
    """Register storage backends: ``register(scheme, factory)``.

    ``factory(url: str)`` returns a ``flowmason.kernel.storage.Store``.
    The scheme is the URL scheme users write (``sqlite``, ``dynamodb``).
    """


@hookspec
def fm_register_commands(app):
    """Add commands to the ``fm`` CLI. ``app`` is the root ``typer.Typer``.

    Called only by the CLI process, after the built-in commands exist.
    """


@hookspec
def fm_register_routes(register):
    """Contribute HTTP routes: ``register(method, path, endpoint, **options)``.

    Called once when the ASGI application is assembled (``fm serve`` and the
    Lambda API). Options include ``name``, ``auth`` (required scope or
    ``None`` for public), ``summary`` and request/response models for the
    OpenAPI document.
    """


@hookspec
def fm_register_authenticators(register):
    """Register request authenticators: ``register(name, authenticator)``.

    The HTTP API tries them in registration order; the first that returns
    an identity wins.
    """


@hookspec
def fm_register_rate_limiters(register):
    """Register rate-limit backends: ``register(name, factory)``."""


@hookspec
def fm_register_triggers(register):
    """Register run triggers (natural language, schedules): ``register(name, trigger)``."""


@hookspec
def fm_register_codegen_targets(register):
    """Register code generators: ``register(target, generate)``; ``generate(pipeline) -> dict[path, text]``."""


@hookspec
def fm_register_loaders(register):
    """Register pipeline reference schemes: ``register(scheme, load)``.

    ``load(ref: str, origin: LoadContext) -> dict`` returns the pipeline
    definition (the parsed JSON object) that ``ref`` names. ``scheme`` is
    what a reference starts with (``file`` for paths, ``store`` for a
    saved pipeline ``store://ID@3``, later ``registry://org/name@1.2``); a
    reference with no ``scheme://`` is tried as a file path next to the
    referring pipeline, then as a stored pipeline id. The runner uses the
    loaders for what a user runs, for ``extends`` parents and for
    sub-pipelines, so every entry point resolves references the same way.
    Raise ``NotFoundError`` when the reference names nothing.
    """


@hookspec
def fm_register_exporters(register):
    """Register run exporters: ``register(format, export)``; ``export(run, stages, pipeline) -> str | bytes``."""


# -- pipeline resolution --


@hookspec(firstresult=True)
def fm_resolve_pipeline(pipeline, loader):
    """Resolve inheritance (``extends``/``overrides``) before validation.

    Called by ``load``/``validate``/``run`` with the parsed pipeline and a
    ``loader(ref) -> Pipeline`` for parent references. Return the resolved
    pipeline, or ``None`` to leave it as it is. First result wins.
    """


# -- execution: called by the executor; only when implemented --


@hookspec(firstresult=True)
def fm_wrap_stage(ctx, call):
    """Wrap a stage's component call (caching, recorded model calls, tracing).

    Implement it as a pluggy wrapper: ``@hookimpl(wrapper=True)``. ``ctx``
    is the stage's ``StageContext`` (config already rendered); ``inner =
    yield`` gives the call built so far, an ``async (ctx) -> output``
    function (the component itself when yours is the innermost wrapper);
    return the call to use instead, or ``inner`` unchanged. Called once
    per stage execution, before its retries and inside its timeout, so the
    returned call runs once per attempt. Implementing it takes the
    executor off its inline fast path for plain-function stages, so
    implement it only in plugins that need it.
    """


@hookspec(firstresult=True)
def fm_wrap_provider(name, provider):
    """Wrap an LLM provider when a run first asks for it (record/replay, caching, tracing).

    Implement it as a pluggy wrapper: ``@hookimpl(wrapper=True)``; ``inner =
    yield`` gives the provider built so far (the factory's, when yours is the
    innermost wrapper); return the provider to use instead (same interface as
    ``kernel.providers.Provider``), or ``inner``. Called by
    ``kernel.providers.resolve_provider`` once per provider per run.
    """


@hookspec
def fm_stage_event(kind, run, stage, data):
    """Everything a live view needs, as it happens: the one event channel.

    ``kind`` is ``run.started``, ``stage.started`` (``data``: the rendered,
    secret-masked config), ``stage.log`` (``{"level", "message", "data"}``),
    ``stage.token`` (a streamed text chunk), ``stage.retry``,
    ``stage.progress``, ``stage.finished``/``stage.failed``/
    ``stage.skipped``/``stage.cancelled`` (``data``: the ``StageResult``),
    ``run.suspended`` or ``run.finished`` (``data``: the Run). ``stage`` is
    the ``model.Stage`` or ``None`` for run events. Called synchronously on
    the event loop: do little (append to a buffer), never block. Hosts
    (``fm serve``, the worker) persist these so event streams show live
    stages, logs and tokens. Return value ignored.
    """


@hookspec
def fm_run_started(run, pipeline):
    """A run began. ``run`` is a ``model.Run`` (status running)."""


@hookspec
def fm_run_finished(run, pipeline):
    """A run ended: completed, failed or cancelled (see ``run.status``)."""


@hookspec
def fm_stage_started(run, stage, inputs):
    """A stage is about to call its component with resolved ``inputs``."""


@hookspec
def fm_stage_finished(run, stage, result):
    """A stage completed. ``result`` is a ``model.StageResult``."""


@hookspec
def fm_stage_failed(run, stage, result):
    """A stage failed after its retries. ``result.error`` holds the error."""


@hookspec
def fm_stage_skipped(run, stage, result):
    """A stage was skipped (disabled, branch not taken, or upstream failed with on_error=skip)."""
