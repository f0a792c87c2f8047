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


# -- execution events: called by the executor; only when implemented --


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
