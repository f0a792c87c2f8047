"""Every extension point of FlowMason: the contract between the host and its plugins.

Plugins implement these with ``@hookimpl`` (from ``flowmason`` or
``flowmason.kernel.plugins``); a hookimpl's name must be one of these and
its arguments a subset of the spec's, or the plugin manager refuses the
plugin with a ``PluginError`` that names it and the closest hook.

Each hook below says who calls it, when, what its arguments are and what
its return value means. They are grouped by phase:

1. **Registration** — called once per process, the first time the host
   needs that kind of thing (``plugins.Registry``), plugin by plugin in
   registration order: ``DEFAULT_PLUGINS`` order, then entry points, then
   plugins registered at run time (``tryfirst``/``trylast`` move a plugin
   to the front or the back). The plugin gets a ``register(...)`` callback
   instead of returning a list, so the host controls names, duplicates (an
   error naming both plugins) and provenance (``fm plugins`` shows who
   registered what). Return values are ignored.
2. **Pipeline resolution** — called by the runner for every pipeline it
   loads, before validation.
3. **Execution** — called by the executor while a run executes, only when
   some plugin implements them (an unimplemented event hook costs nothing
   per stage). Notification hooks are called by pluggy, last registered
   first; they must not depend on each other's order, and their return
   value is ignored.
4. **HTTP API** — called when the ASGI application is assembled
   (``fm serve``, the Lambda API): routes, authenticators, rate limiters.

``FM_TRACE_PLUGINS=1`` prints every hook call, the plugins it reached, its
duration and its outcome to stderr.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("flowmason")

# ---------------------------------------------------------------------------
# 1. Registration
# ---------------------------------------------------------------------------


@hookspec
def fm_register_components(register):
    """Register components (AI nodes, operators, control flow).

    Called by ``Registry.components``, the first time a process compiles a
    plan or lists components (``fm run``, ``fm validate``, ``fm plugins``,
    the API and the worker).

    :param register: ``register(component)``, with objects made by the
        decorators of ``flowmason.kernel.components`` (``@component``,
        ``@operator``, ``@node``, ``@control_flow``); the component's
        ``name`` is the ``type`` a pipeline stage writes. A second
        component of the same name is a ``PluginError`` naming both
        plugins. Its ``output_schema`` (closed with ``additionalProperties:
        false``; kernel/outputs.py) lets ``fm validate`` refuse references
        to fields it does not produce.
    """


@hookspec
def fm_register_providers(register):
    """Register LLM providers.

    Called by ``Registry.providers``, the first time a run resolves a
    provider (``kernel.providers.resolve_provider``).

    :param register: ``register(name, factory)``. ``name`` is what a stage
        or ``FM_PROVIDER`` writes (``anthropic``, ``openai``);
        ``factory(settings: dict)`` returns an object with the provider
        interface of ``flowmason.kernel.providers.Provider`` (``complete``,
        ``stream``). The factory is called lazily, when a run first needs
        that provider, so a heavy SDK is imported only then; ``settings``
        are the stage's provider settings (``timeout_s``, ``api_key``...).
    """


@hookspec
def fm_register_storage_backends(register):
    """Register storage backends.

    Called by ``Registry.storage_backends`` when ``kernel.storage.open_store``
    first opens a store (every command that reads or records runs).

    :param register: ``register(scheme, factory)``. ``scheme`` is the URL
        scheme users write in ``--store``/``FM_STORE`` (``sqlite``,
        ``dynamodb``); ``factory(url: str)`` returns a
        ``flowmason.kernel.storage.Store`` opened on ``url``, or raises a
        ``ConfigError`` naming what is wrong with the URL. The store's
        ``blobs`` is its ``BlobStore`` for values over the item limit (None:
        such values fail their stage); tests/conformance checks both.
    """


@hookspec
def fm_register_loaders(register):
    """Register pipeline reference schemes.

    Called by ``Registry.loaders`` when ``kernel.runner.Loader`` first
    loads a reference: what a user runs, ``extends`` parents and
    sub-pipelines, on every entry point (CLI, Python API, HTTP API, worker).

    :param register: ``register(scheme, load)``. ``scheme`` is what a
        reference starts with (``file`` for paths, ``store`` for a saved
        pipeline ``store://ID@3``, later ``registry://org/name@1.2``);
        ``load(ref: str, origin: LoadContext) -> dict | Pipeline`` gets
        the reference without its ``scheme://`` (``ID@3`` for
        ``store://ID@3``) and returns the pipeline definition it names (the
        parsed JSON object, or a ``Pipeline``). ``LoadContext`` gives the referring file's folder,
        the store, the tenant namespace and whether files may be read
        (``files`` is False on servers). Raise ``NotFoundError`` when the
        reference names nothing. A reference with no ``scheme://`` is tried
        as a file path next to the referring pipeline, then as a stored
        pipeline id.
    """


@hookspec
def fm_register_exporters(register):
    """Register run exporters, the formats of ``fm export RUN --format F``.

    Called by ``Registry.exporters`` when ``fm export`` looks a format up.

    :param register: ``register(format, export)``;
        ``export(run, stages, pipeline) -> str | bytes`` gets the
        ``model.Run``, its ``StageResult`` list and the ``Pipeline`` (or
        ``None`` when the definition is unknown) and returns the document;
        ``bytes`` are written as they are, ``str`` as UTF-8.
    """


@hookspec
def fm_register_commands(app):
    """Add commands to the ``fm`` command line.

    Called by ``kernel.cli.build_app`` in the CLI process only, plugin by
    plugin in registration order, after the global options exist. Not a
    ``register`` callback (the same exception llm makes): typer's own API
    is the contract.

    :param app: the root ``typer.Typer``; add commands with
        ``app.command(...)`` or sub-apps with ``app.add_typer(...)``.
        Import heavy modules inside the command function, not here: every
        ``fm`` invocation calls this hook.
    """


# Removed: fm_register_triggers and fm_register_codegen_targets had no
# implementation, no caller and no test. With a strict plugin manager a
# plugin implementing either is refused with a clear error; the feature
# that needs one (natural-language triggers, code generation) adds the
# spec together with its consumer and test.

# ---------------------------------------------------------------------------
# 2. Pipeline resolution
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def fm_resolve_pipeline(pipeline, loader):
    """Turn a parsed pipeline into the one that runs (inheritance: ``extends``/``overrides``).

    Called by ``kernel.runner.Loader.resolve`` for every pipeline the
    runner loads, on every entry point (``fm run``, ``fm validate``, the
    Python API, the HTTP API, the worker, sub-pipelines), after parsing
    and before validation and compilation.

    :param pipeline: the parsed ``model.Pipeline``, as written.
    :param loader: ``loader(ref) -> Pipeline``, the runner's loader for
        parent references (unresolved: the implementation resolves
        parents itself, so a chain of ``extends`` works).
    :return: the resolved ``Pipeline``, or ``None`` to leave it as it is.
        ``firstresult``: the first implementation returning something wins
        and the rest are not called, so return ``None`` for pipelines that
        are not yours.
    """


# ---------------------------------------------------------------------------
# 3. Execution (called by kernel/executor.py, only when implemented)
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def fm_wrap_stage(ctx, call):
    """Wrap a stage's component call (caching, recorded model calls, tracing).

    Implement it as a pluggy wrapper, ``@hookimpl(wrapper=True)``; the
    kernel's call is the innermost implementation. Called by the executor
    once per stage execution, after the stage gate and config rendering,
    before its retries and inside its timeout, so the call you return runs
    once per attempt. Implementing it takes the executor off its inline
    fast path for plain-function stages: implement it only when needed.

    :param ctx: the stage's ``StageContext`` (config rendered).
    :param call: the component call, ``async (ctx) -> output``.
    :return: ``inner = yield`` gives the call built so far (the component
        itself when yours is the innermost wrapper); return the call to use
        instead (an ``async (ctx) -> output``), or ``inner`` unchanged.
    """


@hookspec(firstresult=True)
def fm_wrap_provider(name, provider):
    """Wrap an LLM provider when a run first asks for it (record/replay, caching, tracing).

    Implement it as a pluggy wrapper, ``@hookimpl(wrapper=True)``; the
    provider the factory made is the innermost implementation. Called by
    ``kernel.providers.resolve_provider`` once per provider per run (the
    cassettes plugin records and replays model calls here).

    :param name: the provider's registered name (``anthropic``, ``openai``, ...).
    :param provider: the provider the factory made (``kernel.providers.Provider``).
    :return: ``inner = yield`` gives the provider built so far; return the
        provider to use instead (same interface), or ``inner`` unchanged.
    """


@hookspec
def fm_stage_event(kind, run, stage, data):
    """Everything a live view needs, as it happens: the one event channel.

    Called by ``Execution.emit``, synchronously on the event loop, for each
    event of a run (the same events in-process listeners get). Do little
    (append to a buffer) and never block; an exception is swallowed so an
    observer cannot break a run. Hosts (``fm serve``, the worker) persist
    these so event streams show live stages, logs and tokens.

    :param kind: ``run.started``, ``stage.started``, ``stage.log``,
        ``stage.token``, ``stage.retry``, ``stage.progress``,
        ``stage.finished``, ``stage.failed``, ``stage.skipped``,
        ``stage.cancelled``, ``run.suspended`` or ``run.finished``.
    :param run: the ``model.Run``.
    :param stage: the ``model.Stage``, or ``None`` for run events.
    :param data: for ``stage.started`` the rendered, secret-masked config;
        ``stage.log`` ``{"level", "message", "data"}``; ``stage.token`` a
        streamed text chunk; settled stages their ``StageResult``; run
        events the Run.
    :return: ignored.
    """


@hookspec
def fm_run_started(run, pipeline):
    """A run began.

    Called by the executor when an execution starts (a resumed run starts
    again), after the recorder saw the start and before any stage runs.
    An exception here propagates to the caller of the run.

    :param run: the ``model.Run``, status ``running``.
    :param pipeline: the resolved ``model.Pipeline``.
    :return: ignored.
    """


@hookspec
def fm_run_finished(run, pipeline):
    """A run ended: completed, failed or cancelled (see ``run.status``).

    Called by the executor after the last stage settled, the run's status
    and output are set and the recorder recorded the end. Not called for a
    suspended run (it has not ended). The providers plugin uses it to
    flush recording cassettes.

    :param run: the finished ``model.Run`` (``status``, ``output``, ``error``).
    :param pipeline: the resolved ``model.Pipeline``.
    :return: ignored.
    """


@hookspec
def fm_stage_started(run, stage, inputs):
    """A stage is about to call its component.

    Called by the executor after the stage passed its gate and rendered
    its config, before its wrappers, retries and timeout.

    :param run: the ``model.Run``.
    :param stage: the ``model.Stage``.
    :param inputs: the rendered config with secrets masked (what the run
        record shows), not the values the component receives.
    :return: ignored.
    """


@hookspec
def fm_stage_finished(run, stage, result):
    """A stage completed.

    Called by the executor when a stage execution settles successfully
    (each iteration of a loop body is one execution), after the recorder
    saw it.

    :param run: the ``model.Run``.
    :param stage: the ``model.Stage``.
    :param result: the ``model.StageResult`` (``output``, timings, usage).
    :return: ignored.
    """


@hookspec
def fm_stage_failed(run, stage, result):
    """A stage failed after its retries (an exception, a timeout, a template error in its config).

    Called by the executor when the failure is final, whatever the stage's
    ``on_error`` then does to its dependents.

    :param run: the ``model.Run``.
    :param stage: the ``model.Stage``.
    :param result: the ``model.StageResult``; ``result.error`` holds the
        error as a dict (``code``, ``message``, ``stage``, ``hint``).
    :return: ignored.
    """


@hookspec
def fm_stage_skipped(run, stage, result):
    """A stage was skipped: disabled, its branch not taken, or an upstream failed with ``on_error=skip``.

    Called by the executor once per skipped stage, when it is settled as
    skipped (its component never runs).

    :param run: the ``model.Run``.
    :param stage: the ``model.Stage``.
    :param result: the ``model.StageResult`` with status ``skipped``.
    :return: ignored.
    """


# ---------------------------------------------------------------------------
# 4. HTTP API (called by plugins/http_api when the ASGI app is assembled)
# ---------------------------------------------------------------------------


@hookspec
def fm_register_routes(register):
    """Contribute HTTP routes to the one ASGI application.

    Called once per application, when ``fm serve`` or the Lambda API builds
    it, plugin by plugin in registration order. A second route with the
    same method and path is a ``PluginError`` naming both plugins.

    :param register: ``register(method, path, endpoint, *, name=None,
        auth="read", summary="", request_model=None, response_model=None,
        status_code=200, tags=[], query=[])``.

        - ``path`` is a starlette path (``/runs/{run_id}``).
        - ``endpoint(request)`` gets a ``starlette.requests.Request``; it is
          sync (run in a thread) or async. It returns a starlette
          ``Response`` (sent as it is), or something JSON-able (dict,
          list, pydantic model) sent with ``status_code``, or a tuple
          ``(status, that)``.
        - ``auth`` is the scope the route needs (``"read"``, ``"run"``,
          ``"write"``; an identity holding ``"*"`` or ``"admin"`` passes
          every check), or ``None`` for a public route. Without an
          identity a non-public route answers 401, without the scope 403.
        - ``request_model`` (pydantic): the body is read (at most
          ``FM_MAX_BODY_BYTES``, default 1 MiB, else 413), parsed as a JSON
          object (else 400 ``bad_json`` / 422) and validated (else 422
          naming the field); ``request.state.body`` is the model instance
          and ``request.state.json`` the raw dict.
        - ``request.state.identity`` is the caller's identity (below) or
          ``None`` on a public route nobody authenticated for; data is
          stored per tenant under ``kernel.runs.namespace(org_id)``.
        - ``response_model``, ``summary``, ``tags`` and ``status_code`` go
          into the OpenAPI document (``/openapi.json``), and so does
          ``query=[...]``: the query parameters the endpoint reads, as
          OpenAPI parameter objects (``{"name", "in": "query", "required",
          "description", "schema"}``).

        Errors: every error response is ``{"error": {"code", "message",
        "field", "hint"}}`` (plus ``stage``, ``pipeline`` or ``problems``
        when they apply). Raise a kernel ``FlowMasonError``, whose
        ``code`` picks the status (``not_found`` 404, ``conflict`` 409,
        ``bad_input``/``validation``/``pipeline_invalid`` 422,
        ``storage`` 503...), or the HTTP plugin's ``ApiError(status, code,
        message)`` for an explicit status. Any other exception becomes a
        500 that does not echo its text.
    """


@hookspec
def fm_register_authenticators(register):
    """Register request authenticators: who is calling.

    Called once per application, when the HTTP API builds its guards. The
    app asks them in registration order for every request (public routes
    included, so they can see who calls); the first that returns an
    identity wins and the rest are not asked.

    :param register: ``register(name, authenticator)``.
        ``authenticator.authenticate(request)``, or the object itself if it
        is callable, sync or async, gets the starlette ``Request`` and
        returns an identity dict ``{"subject", "org_id", "roles",
        "scopes"}`` (plus whatever the plugin adds, e.g. ``kind``,
        ``key_prefix``), or ``None``: not mine, ask the next. It may raise
        ``ApiError(401, "unauthorized", ...)`` to refuse outright (a forged
        or expired token); that refusal counts against the caller's rate
        limit. **When no authenticator is registered the app runs in local
        single-user mode**: every request is ``{"subject": "local",
        "org_id": "default", "roles": ["owner"], "scopes": ["*"]}``.
    """


@hookspec
def fm_register_rate_limiters(register):
    """Register rate limiters: may this caller make this request now.

    Called once per application, when the HTTP API builds its guards.
    Every limiter is asked for every request, after authentication and
    before the route runs (and for refused credentials, with no identity).

    :param register: ``register(name, limiter)``, with an object that has
        ``check(request, identity)`` or a no-argument factory returning
        one (called once, when the app is built). ``check`` (sync or async) returns
        ``None`` to allow, or a dict ``{"allowed": bool, "retry_after":
        seconds, "headers": {...}}``. Headers (``RateLimit-*``) are added to
        the response either way; a refusal answers 429 with
        ``Retry-After``.
    """
