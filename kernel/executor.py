"""The async DAG executor.

A stage starts as soon as its dependencies have settled; ready stages run
concurrently (optionally bounded); each stage gets its rendered config,
a timeout, retries with backoff, and an error policy (``on_error``:
fail / continue / skip / fallback). Control-flow components steer the
graph through their ``StageContext``: run a set of owned stages (foreach,
trycatch), skip gated stages (router, conditional), end the run early
(return) or run another pipeline (subpipeline).

After every stage a ``StageResult`` goes to the recorder (the checkpoint:
a run can resume after its last finished stage) and, only if some plugin
implements them, to the event hooks. Everything per-pipeline is compiled
once in ``plan.compile_plan``; the per-stage path is a few dict operations,
one component call and one recorder call.
"""
from __future__ import annotations

import asyncio
import random
import re
import time
from collections import ChainMap, deque
from typing import Any, Awaitable, Callable, Iterable, Mapping, Protocol

from .components import StageContext, Suspend, _Return
from .errors import (
    ConfigError,
    FlowMasonError,
    InputError,
    RunCancelledError,
    StageError,
    StageTimeoutError,
    TemplateError,
)
from .model import Pipeline, Run, RunStatus, Stage, StageResult, StageStatus
from .plan import Plan, StagePlan, compile_cached
from .bounds import Offload
from .templating import EnvView, evaluate as evaluate_expr, render_fast, render_off_loop

DEFAULT_STAGE_TIMEOUT_S = 600.0

_COMPLETED = StageStatus.COMPLETED
_FAILED = StageStatus.FAILED
_SKIPPED = StageStatus.SKIPPED


class Recorder(Protocol):
    """Where a run is checkpointed. ``kernel.runs.RunRepository`` is the stored one."""

    def run_started(self, run: Run) -> None: ...

    def stage_recorded(self, run: Run, result: StageResult) -> None: ...

    def run_finished(self, run: Run) -> None: ...


Listener = Callable[[str, Run, "Stage | None", Any], None]


class StagePoint:
    """What the stage gate sees: the stage about to start, where it runs and the scope it renders in.

    ``iteration`` is the full iteration path (``None`` in the main graph,
    ``"3"`` in a foreach's fourth item, ``"3/0"`` one loop deeper).
    ``evaluate`` reads the scope in template syntax (``{{upstream.a.x}} > 1``)
    or as a bare expression (``upstream.a.x > 1``): conditional breakpoints
    and watch expressions.
    """

    __slots__ = ("execution", "stage", "iteration", "scope")

    def __init__(self, execution: "Execution", stage: Stage, iteration: str | None, scope: Mapping[str, Any]) -> None:
        self.execution = execution
        self.stage = stage
        self.iteration = iteration
        self.scope = scope

    @property
    def run(self) -> Run:
        return self.execution.run

    def evaluate(self, expression: str) -> Any:
        # `{{a}} < 0.5` means the expression `(a) < 0.5`, not the text "0.7 < 0.5"
        text = _TEMPLATE_MARKS.sub(r"(\1)", expression.strip())
        return evaluate_expr(text, self.scope)


_TEMPLATE_MARKS = re.compile(r"\{\{(.*?)\}\}", re.S)

# awaited before each stage renders its config, outside its timeout and retries; an object with a
# `wants(stage_id, iteration) -> bool` method is awaited only where that says it may stop
StageGate = Callable[[StagePoint], Awaitable[None]]
# ``wrap(ctx, call) -> call``: the component call, wrapped (caching, recorded calls, fan-out)
StageCall = Callable[["StageContext"], Awaitable[Any]]
StageWrapper = Callable[["StageContext", StageCall], StageCall]


class _Graph:
    """Schedules one set of stages (the main graph, or a loop/try body)."""

    def __init__(self, ex: "Execution", ids: list[str], scope: dict[str, Any], results: dict[str, Any], *, label: str | None = None, parent: "_Graph | None" = None) -> None:
        self.ex = ex
        self.ids = ids
        self.scope = scope
        self.results = results
        self.label = label
        self.skip_requested: set[str] = set(parent.skip_requested) if parent else set()
        self.status: dict[str, StageStatus] = {}
        self.tasks: set[asyncio.Task] = set()

    async def run(self, done: Mapping[str, StageStatus] | None = None) -> None:
        ex = self.ex
        stages = ex.plan.stages
        members = set(self.ids)
        waiting: dict[str, int] = {}
        dependents: dict[str, list[str]] = {}
        for sid in self.ids:
            ds = [d for d in stages[sid].deps if d in members]
            waiting[sid] = len(ds)
            for d in ds:
                dependents.setdefault(d, []).append(sid)
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        remaining = len(self.ids)
        failure: list[BaseException] = []
        status = self.status
        inline: deque[str] = deque()
        draining = [False]

        def settle(sid: str, st: StageStatus) -> None:
            nonlocal remaining
            status[sid] = st
            remaining -= 1
            for nxt in dependents.get(sid, ()):
                waiting[nxt] -= 1
                if waiting[nxt] == 0:
                    start(nxt)
            if remaining == 0 and not finished.done():
                finished.set_result(None)

        def on_done(task: asyncio.Task) -> None:
            self.tasks.discard(task)
            if task.cancelled():
                return
            exc = task.exception()
            if exc is not None:
                if not finished.done():
                    failure.append(exc)
                    finished.set_result(None)
                return
            sid, st = task.result()
            settle(sid, st)

        def start(sid: str) -> None:
            if done is not None and sid in done:
                settle(sid, done[sid])
                return
            if finished.done():
                return
            deps = [d for d in stages[sid].deps if d in members]
            if deps:
                sts = [status[d] for d in deps]
                blocked = all(s is _SKIPPED for s in sts) or any(s is _FAILED and ex.blocks(d) for s, d in zip(sts, deps))
            else:
                blocked = False
            if sid in self.skip_requested or blocked or not stages[sid].stage.enabled:
                reason = (
                    "branch not taken" if sid in self.skip_requested
                    else "disabled" if not stages[sid].stage.enabled else "upstream skipped or failed"
                )
                ex.record_skip(stages[sid], reason, self.label)
                self.results[sid] = None
                settle(sid, _SKIPPED)
                return
            sp = stages[sid]
            if sp.sync_ok and ex.inline and not ex.stops_at(sid, self.label):
                # plain functions run inline; a queue keeps long chains from recursing
                inline.append(sid)
                if not draining[0]:
                    drain()
                return
            task = loop.create_task(ex.run_stage(sp, self))
            self.tasks.add(task)
            task.add_done_callback(on_done)

        def drain() -> None:
            draining[0] = True
            try:
                while inline:
                    sid = inline.popleft()
                    if finished.done():
                        inline.clear()
                        return
                    try:
                        settle(*ex.run_stage_sync(stages[sid], self))
                    except Offload:  # a slow expression in its config: render it off the event loop
                        task = loop.create_task(ex.run_stage(stages[sid], self))
                        self.tasks.add(task)
                        task.add_done_callback(on_done)
                    except BaseException as exc:  # noqa: BLE001 - same handling as a failed task
                        if not finished.done():
                            failure.append(exc)
                            finished.set_result(None)
                        inline.clear()
                        return
            finally:
                draining[0] = False

        # take the ready set first: starting one may settle it at once (resume) and ready others
        for sid in [s for s in self.ids if waiting[s] == 0]:
            start(sid)
        if remaining == 0:
            return
        try:
            await finished
        except asyncio.CancelledError:
            await self._cancel_all()
            raise
        if failure:
            await self._cancel_all()
            raise failure[0]

    async def _cancel_all(self) -> None:
        tasks = list(self.tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class Execution:
    """One run of one plan."""

    def __init__(
        self,
        plan: Plan,
        inputs: dict[str, Any] | None = None,
        *,
        run: Run | None = None,
        recorder: Recorder | None = None,
        listeners: list[Listener] | None = None,
        max_concurrency: int | None = None,
        resume: Mapping[str, StageResult] | None = None,
        loader: Callable[[Any], Pipeline] | None = None,
        hooks: Any = None,
        depth: int = 0,
        gate: StageGate | None = None,
        wrappers: Iterable[StageWrapper] = (),
    ) -> None:
        self.plan = plan
        pipeline = plan.pipeline
        self.run = run or Run(
            pipeline_id=pipeline.key, pipeline_name=pipeline.name, pipeline_version=pipeline.version,
            inputs=dict(inputs or {}),
        )
        self.recorder = recorder
        self.listeners = list(listeners or [])
        self.sem = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self.max_concurrency = max_concurrency
        self.resume = dict(resume or {})
        self.loader = loader
        self.variables: dict[str, Any] = {}
        self.depth = depth
        self._providers: dict[str, Any] = {}
        self._task: asyncio.Task | None = None
        self.usage: dict[str, float] = {}
        self._hooks = hooks if hooks is not None else _event_hooks()
        self._graph_scope: dict[str, Any] | None = None
        self.gate = gate
        # a gate with `wants(stage_id, iteration) -> bool` is awaited only where it may stop (a debugger
        # with breakpoints elsewhere leaves the inline fast path on); a plain async callable before every stage
        self.gate_wants: Callable[[str, str | None], bool] | None = getattr(gate, "wants", None)
        self.wrappers = list(wrappers)
        if "fm_wrap_stage" in self._hooks:
            self.wrappers.append(_hook_wrapper(self._hooks["fm_wrap_stage"]))
        # plain functions run inline unless something must await around them
        self.inline = self.sem is None and not self.wrappers and (gate is None or self.gate_wants is not None)
        self.suspended: str | None = None  # the reason, when the run was parked unfinished
        self._watched: dict[asyncio.Task, float] = {}  # stage tasks on the default timeout -> deadline
        self._overdue: set[asyncio.Task] = set()
        self._watchdog: asyncio.Task | None = None

    @property
    def observed(self) -> bool:
        """True when someone takes stage events (listeners or the ``fm_stage_event`` hook): stream tokens then."""
        return bool(self.listeners) or "fm_stage_event" in self._hooks

    # -- events --
    def emit(self, kind: str, stage: Stage | None, data: Any) -> None:
        """One event channel: in-process listeners, then the ``fm_stage_event`` hook (hosts persist it)."""
        for listener in self.listeners:
            try:
                listener(kind, self.run, stage, data)
            except Exception:  # noqa: BLE001 - a broken progress display must not break the run
                pass
        hook = self._hooks.get("fm_stage_event")
        if hook is not None:
            try:
                hook(kind=kind, run=self.run, stage=stage, data=data)
            except Exception:  # noqa: BLE001 - an observer must not break the run
                pass

    def _hook(self, name: str, **kwargs: Any) -> None:
        hook = self._hooks.get(name)
        if hook is not None:
            hook(**kwargs)

    async def run_stages(self, ctx: StageContext, ids: Iterable[str], *, context: dict[str, Any] | None = None,
                         label: str | None = None) -> dict[str, Any]:
        """Run a control-flow stage's owned stages as a sub-graph of its own (``StageContext.run_stages``)."""
        ids = list(ids)
        if not ids:
            return {}
        parent = ctx.scope
        local: dict[str, Any] = {}
        scope = dict(parent)
        scope["upstream"] = ChainMap(local, parent["upstream"])
        if context:
            scope["context"] = ChainMap(context, parent.get("context") or {})
        outer = ctx.graph.label
        if outer is not None:
            # the full iteration path: foreach in foreach is "2/1", a try body inside iteration 2 is "2"
            label = outer if label is None else f"{outer}/{label}"
        sub = _Graph(self, ids, scope, local, label=label, parent=ctx.graph)
        await sub.run()
        return local

    def blocks(self, sid: str) -> bool:
        """True when a failure of ``sid`` keeps its dependents from running (on_error=skip)."""
        return self.plan.stages[sid].stage.error_policy() == "skip"

    # -- providers --
    def provider(self, name: str | None, **settings: Any) -> Any:
        from .providers import resolve_provider

        key = name or ""
        if key not in self._providers or settings:
            prov = resolve_provider(name, settings)
            if settings:
                return prov
            self._providers[key] = prov
        return self._providers[key]

    # -- recording --
    def _record(self, result: StageResult) -> None:
        if self.recorder is not None:
            self.recorder.stage_recorded(self.run, result)

    def record_skip(self, sp: StagePlan, reason: str, label: str | None) -> None:
        now = time.time()
        result = _stage_result({
            "stage_id": sp.stage.id, "component_type": sp.stage.component_type, "status": _SKIPPED,
            "input": None, "output": None, "error": {"message": reason}, "started_at": now, "finished_at": now,
            "duration_ms": 0.0, "attempts": 0, "usage": None, "iteration": label,
        })
        self._record(result)
        self.emit("stage.skipped", sp.stage, result)
        self._hook("fm_stage_skipped", run=self.run, stage=sp.stage, result=result)

    # -- one stage --
    def _resumed(self, sp: StagePlan, graph: _Graph) -> tuple[str, StageStatus] | None:
        """A stage instance settled before a resume or replay is not run again: the same stage at the
        same iteration path only (``resume`` keys are ``stage_id`` or ``stage_id#iteration``)."""
        if not self.resume:
            return None
        sid = sp.stage.id
        label = graph.label
        prior = self.resume.get(sid if label is None else f"{sid}#{label}")
        if prior is None or prior.iteration != label or not reusable(sp, prior):
            return None
        graph.results[sid] = prior.output
        return sid, prior.status

    async def run_stage(self, sp: StagePlan, graph: _Graph) -> tuple[str, StageStatus]:
        resumed = self._resumed(sp, graph)
        if resumed is not None:
            return resumed
        stage = sp.stage
        sid = stage.id
        if self.sem is not None:
            async with self.sem:
                await self._at_gate(stage, graph)
                return await self._run_stage(sp, graph, sid, stage)
        await self._at_gate(stage, graph)
        return await self._run_stage(sp, graph, sid, stage)

    def stops_at(self, stage_id: str, iteration: str | None) -> bool:
        """Whether the gate must be awaited before this stage (every stage, unless the gate says where)."""
        return self.gate is not None and (self.gate_wants is None or self.gate_wants(stage_id, iteration))

    async def _at_gate(self, stage: Stage, graph: _Graph) -> None:
        if self.stops_at(stage.id, graph.label):
            await self.gate(StagePoint(self, stage, graph.label, graph.scope))

    def _begin(self, sp: StagePlan, graph: _Graph, rendered: Any = None) -> tuple[StageContext, float, float]:
        """Render the config and announce the stage; a template error fails the stage here.

        The config renders on the fast path; an expression that needs more
        raises ``Offload`` and the async path renders it again off the event
        loop, passing the finished future as ``rendered``.
        """
        started = time.time()
        t0 = time.perf_counter()
        stage = sp.stage
        try:
            config = render_fast(sp.render, graph.scope) if rendered is None else rendered.result()
        except TemplateError as exc:
            exc.stage = stage.id
            exc.pipeline = self.plan.name
            exc.field = exc.field or "config"
            exc.started = (started, t0)  # type: ignore[attr-defined]
            raise
        if self.listeners or self._hooks:
            shown = self._public(sp, graph, config)
            self.emit("stage.started", stage, shown)
            self._hook("fm_stage_started", run=self.run, stage=stage, inputs=shown)
        return StageContext(self, sp, config, graph.scope, graph), started, t0

    def _seen_secrets(self) -> set[str]:
        env = self._graph_scope.get("env") if self._graph_scope else None
        return getattr(env, "seen", set())

    def _public(self, sp: StagePlan, graph: _Graph, config: Any) -> Any:
        """The config as records and events may show it (secrets masked)."""
        if not sp.redact:
            return config
        from .redaction import redact

        env = graph.scope.get("env")
        return redact(config, getattr(env, "seen", ()))

    def _fail(self, sp: StagePlan, graph: _Graph, exc: BaseException, ctx: StageContext | None,
              started: float, t0: float, attempts: int) -> tuple[str, StageStatus]:
        """Record a failure; return the settled status (on_error allows it) or raise the stage error."""
        stage = sp.stage
        sid = stage.id
        config = ctx.config if ctx is not None else None
        error = _error_dict(exc, self.plan.name, sid)
        policy = stage.error_policy()
        if policy in ("continue", "fallback", "skip", "ignore"):
            fallback = stage.fallback_output
            graph.results[sid] = fallback
            self._finish_stage(sp, graph, _FAILED, config, fallback, error, started, t0, attempts, ctx)
            return sid, _FAILED
        self._finish_stage(sp, graph, _FAILED, config, None, error, started, t0, attempts, ctx)
        if isinstance(exc, FlowMasonError):
            exc.stage = exc.stage or sid
            exc.pipeline = exc.pipeline or self.plan.name
            raise exc
        raise StageError(f"{type(exc).__name__}: {exc}", pipeline=self.plan.name, stage=sid) from exc

    def run_stage_sync(self, sp: StagePlan, graph: _Graph) -> tuple[str, StageStatus]:
        """Fast path for plain-function components without retries: no task, no timer.

        A synchronous call cannot be interrupted by a timeout anyway, so this is
        the same semantics as the async path at a fraction of the cost.
        """
        resumed = self._resumed(sp, graph)
        if resumed is not None:
            return resumed
        sid = sp.stage.id
        ctx = None
        started = time.time()
        t0 = time.perf_counter()
        try:
            ctx, started, t0 = self._begin(sp, graph)
            output = sp.component.fn(ctx)
        except Offload:
            raise  # nothing ran yet: the graph runs this stage on the async path, which renders it off the loop
        except _Return as ret:
            self._finish_stage(sp, graph, _COMPLETED, ctx.config if ctx else None, ret.value, None, started, t0, 1, ctx)
            raise
        except Suspend:
            raise
        except Exception as exc:  # noqa: BLE001 - any component failure is a stage failure
            return self._fail(sp, graph, exc, ctx, started, t0, 1)
        graph.results[sid] = output
        self._finish_stage(sp, graph, _COMPLETED, ctx.config, output, None, started, t0, 1, ctx)
        return sid, _COMPLETED

    async def _run_stage(self, sp: StagePlan, graph: _Graph, sid: str, stage: Stage) -> tuple[str, StageStatus]:
        attempts = 0
        ctx: StageContext | None = None
        started = time.time()
        t0 = time.perf_counter()
        try:
            try:
                ctx, started, t0 = self._begin(sp, graph)
            except Offload:
                done = asyncio.ensure_future(render_off_loop(sp.render, graph.scope))
                await asyncio.wait([done])
                ctx, started, t0 = self._begin(sp, graph, done)
            retry = stage.retry_config
            max_attempts = 1 + (retry.max_retries if retry else 0)
            timeout = sp.timeout_s or DEFAULT_STAGE_TIMEOUT_S
            call: StageCall = sp.component.call
            for wrap in self.wrappers:
                call = wrap(ctx, call)
            while True:
                attempts += 1
                ctx.attempt = attempts
                try:
                    if sp.timeout_s:
                        async with asyncio.timeout(timeout):
                            output = await call(ctx)
                    else:
                        output = await self._on_default_timeout(call, ctx)
                    break
                except (_Return, Suspend):
                    raise
                except TimeoutError:
                    err: BaseException = StageTimeoutError(
                        f"timed out after {timeout * 1000:.0f} ms", pipeline=self.plan.name, stage=sid,
                        field="timeout_ms", hint="raise the stage's timeout_ms or make the work smaller",
                    )
                except (TemplateError, InputError, ConfigError) as exc:  # retrying cannot help
                    raise exc
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any component failure is a stage failure
                    err = exc
                if attempts >= max_attempts:
                    raise err
                delay = min(retry.initial_delay_ms * retry.backoff_multiplier ** (attempts - 1), retry.max_delay_ms) / 1000
                self.emit("stage.retry", stage, {"attempt": attempts, "delay_s": delay, "error": str(err)})
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
        except _Return as ret:
            self._finish_stage(sp, graph, _COMPLETED, ctx.config if ctx else None, ret.value, None, started, t0, attempts, ctx)
            raise
        except Suspend:
            raise  # not finished: its host runs it again when the run continues
        except asyncio.CancelledError:
            if self.suspended is not None:
                raise  # parked, not cancelled: nothing to record
            self._finish_stage(sp, graph, StageStatus.CANCELLED, ctx.config if ctx else None, None,
                               {"message": "cancelled"}, started, t0, attempts, ctx)
            raise
        except Exception as exc:  # noqa: BLE001
            return self._fail(sp, graph, exc, ctx, started, t0, attempts)
        graph.results[sid] = output
        self._finish_stage(sp, graph, _COMPLETED, ctx.config, output, None, started, t0, attempts, ctx)
        return sid, _COMPLETED

    async def _on_default_timeout(self, call: StageCall, ctx: StageContext) -> Any:
        """``call(ctx)`` under the default stage timeout, kept by one watchdog per run instead of a timer per stage.

        A fan-out of thousands of stages would otherwise push and cancel a
        timer each (most never fire: the default is ten minutes); the
        watchdog checks the running stages a few times a second and
        cancels an overdue one, which raises TimeoutError here like
        ``asyncio.timeout`` does.
        """
        task = asyncio.current_task()
        assert task is not None
        self._watched[task] = asyncio.get_running_loop().time() + DEFAULT_STAGE_TIMEOUT_S
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(self._watch_default_timeouts())
        try:
            return await call(ctx)
        except asyncio.CancelledError:
            if task in self._overdue:
                self._overdue.discard(task)
                task.uncancel()
                raise TimeoutError from None
            raise
        finally:
            self._watched.pop(task, None)

    async def _watch_default_timeouts(self) -> None:
        loop = asyncio.get_running_loop()
        period = min(1.0, DEFAULT_STAGE_TIMEOUT_S / 10)
        while self._watched:  # ends once no stage is on the default timeout; started again by the next one
            await asyncio.sleep(period)
            now = loop.time()
            for task, deadline in list(self._watched.items()):
                if now >= deadline and task not in self._overdue:
                    self._overdue.add(task)
                    task.cancel()

    def _finish_stage(self, sp: StagePlan, graph: _Graph, status: StageStatus, config: Any, output: Any, error: dict | None, started: float, t0: float, attempts: int, ctx: StageContext | None) -> None:
        usage = ctx.usage if ctx is not None else None
        if usage:
            for k, v in usage.items():
                if isinstance(v, (int, float)):
                    self.usage[k] = self.usage.get(k, 0) + v
        if self.recorder is None and not self.listeners and not self._hooks:
            return  # nobody is looking: skip building the record
        if sp.redact:
            config = self._public(sp, graph, config)
            from .redaction import mask_strings

            output = mask_strings(output, self._seen_secrets())
            error = mask_strings(error, self._seen_secrets())
        result = _stage_result({
            "stage_id": sp.stage.id, "component_type": sp.stage.component_type, "status": status, "input": config,
            "output": output, "error": error, "started_at": started, "finished_at": time.time(),
            "duration_ms": (time.perf_counter() - t0) * 1000, "attempts": attempts, "usage": usage,
            "iteration": graph.label,
        })
        self._record(result)
        if status is _COMPLETED:
            self.emit("stage.finished", sp.stage, result)
            self._hook("fm_stage_finished", run=self.run, stage=sp.stage, result=result)
        elif status is _FAILED:
            self.emit("stage.failed", sp.stage, result)
            self._hook("fm_stage_failed", run=self.run, stage=sp.stage, result=result)
        else:
            self.emit("stage.cancelled", sp.stage, result)

    # -- the run --
    def _scope(self) -> dict[str, Any]:
        run = self.run
        return {
            "input": run.inputs,
            "upstream": {},
            "context": {},
            "env": EnvView(),
            "variables": self.variables,
            "run": {"id": run.id, "pipeline_id": run.pipeline_id},
            "pipeline": {"id": self.plan.pipeline.id, "name": self.plan.pipeline.name, "version": self.plan.pipeline.version},
        }

    def _check_inputs(self) -> None:
        schema = self.plan.pipeline.input_schema
        if not schema or not isinstance(schema, dict) or not (schema.get("properties") or schema.get("required")):
            return
        from .schemas import compile_schema

        try:
            compiled = compile_schema(schema)
        except ValueError as exc:
            raise InputError(str(exc), pipeline=self.plan.name, field="input_schema") from None
        err = compiled.first_error(self.run.inputs)
        if err:
            raise InputError(
                f"input {err}", pipeline=self.plan.name, field="input",
                hint="pass inputs that match the pipeline's input_schema (`fm validate` shows it)",
            )
        self.run.inputs = compiled.apply_defaults(self.run.inputs)

    async def execute(self) -> Run:
        """Run to the end; returns the finished Run (raises on failure or cancellation, after recording)."""
        run = self.run
        self._task = asyncio.current_task()
        run.status = RunStatus.RUNNING
        run.started_at = run.started_at or time.time()
        t0 = time.perf_counter()
        if self.plan.warnings:
            run.metadata.setdefault("warnings", list(self.plan.warnings))
        run.metadata.setdefault("graph", self.plan.graph())
        if self.recorder is not None:
            self.recorder.run_started(run)
        self.emit("run.started", None, run)
        self._hook("fm_run_started", run=run, pipeline=self.plan.pipeline)
        graph: _Graph | None = None
        try:
            self._check_inputs()
            scope = self._scope()
            self._graph_scope = scope
            graph = _Graph(self, self.plan.main, scope, scope["upstream"])
            self._graph = graph
            done = None
            if self.resume:
                stages = self.plan.stages
                done = {sid: r.status for sid, r in self.resume.items() if r.iteration is None and sid in stages
                        and (r.status is _SKIPPED or reusable(stages[sid], r, main=True))}
                for sid in done:
                    graph.results[sid] = self.resume[sid].output
            try:
                await graph.run(done)
                run.output = self._output(graph)
            except _Return as ret:
                await graph._cancel_all()
                run.output = ret.value
            run.status = RunStatus.COMPLETED
            self._check_output()
        except Suspend as why:
            self.suspended = why.reason
            return self._parked()
        except asyncio.CancelledError:
            if self.suspended is not None:
                return self._parked()
            run.status = RunStatus.CANCELLED
            run.error = {"code": "cancelled", "message": "the run was cancelled"}
            self._close(t0)
            raise RunCancelledError("the run was cancelled", pipeline=self.plan.name) from None
        except FlowMasonError as exc:
            run.status = RunStatus.FAILED
            run.error = exc.to_dict()
            self._close(t0)
            raise
        except Exception as exc:  # noqa: BLE001 - an engine bug still records the run as failed
            run.status = RunStatus.FAILED
            run.error = _error_dict(exc, self.plan.name, None)
            self._close(t0)
            raise StageError(f"{type(exc).__name__}: {exc}", pipeline=self.plan.name) from exc
        self._close(t0)
        return run

    def _parked(self) -> Run:
        """The run stops unfinished (still ``running`` in its record): its host continues it later."""
        flush = getattr(self.recorder, "flush", None)
        if flush is not None:
            flush()
        self.emit("run.suspended", None, {"reason": self.suspended})
        return self.run

    def _close(self, t0: float) -> None:
        run = self.run
        run.finished_at = time.time()
        run.duration_ms = (time.perf_counter() - t0) * 1000
        if self.usage:
            run.usage = dict(self.usage)
        if self.recorder is not None:
            try:
                seen = self._seen_secrets()
                # a stage that held secrets or URLs may have passed them on into the run's output
                if seen or any(sp.redact for sp in self.plan.stages.values()):
                    from .redaction import mask_strings

                    run = run.model_copy(update={"output": mask_strings(run.output, seen), "error": mask_strings(run.error, seen)})
                self.recorder.run_finished(run)
            except Exception as exc:  # noqa: BLE001 - never mask the run's own error with a recording one
                if run.status is RunStatus.COMPLETED:
                    # a run whose record could not be written (a value not stored) has not completed
                    self.run.status = RunStatus.FAILED
                    self.run.error = exc.to_dict() if isinstance(exc, FlowMasonError) else _error_dict(exc, self.plan.name, None)
                    raise
        self.emit("run.finished", None, run)
        self._hook("fm_run_finished", run=run, pipeline=self.plan.pipeline)

    def _output(self, graph: _Graph) -> Any:
        p = self.plan.pipeline
        results = graph.results
        if p.output_stage_id:
            return results.get(p.output_stage_id)
        sinks = [s for s in self.plan.sinks if graph.status.get(s) is _COMPLETED] or self.plan.sinks
        if len(sinks) == 1:
            return results.get(sinks[0])
        return {s: results.get(s) for s in sinks}

    def _check_output(self) -> None:
        schema = self.plan.pipeline.output_schema
        if not schema or not isinstance(schema, dict) or not (schema.get("properties") or schema.get("required") or schema.get("type")):
            return
        from .schemas import compile_schema

        try:
            err = compile_schema(schema).first_error(self.run.output)
        except ValueError:
            return
        if err:
            # a warning, not a failure: existing files often declare loose output schemas
            self.run.metadata.setdefault("warnings", []).append(f"output does not match output_schema: {err}")

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def suspend(self, reason: str) -> None:
        """Park the run from outside (a deadline): in-flight stages stop unrecorded, the run stays unfinished."""
        self.suspended = reason
        self.cancel()

    async def run_child(self, ref: Any, inputs: dict[str, Any], stage: Stage) -> Any:
        if self.depth >= 16:
            raise StageError("sub-pipelines nested more than 16 deep", pipeline=self.plan.name, stage=stage.id,
                             hint="check for a pipeline that calls itself")
        if isinstance(ref, Pipeline):
            child = ref
        elif isinstance(ref, dict) and "stages" in ref:
            from .model import parse_pipeline

            child = parse_pipeline(ref)
        elif self.loader is not None:
            child = self.loader(ref)
        else:
            raise StageError(f"cannot find sub-pipeline '{ref}'", pipeline=self.plan.name, stage=stage.id,
                             field="config.pipeline_id", hint="give a path to a .pipeline.json file or an inline pipeline")
        plan = plan_for(child)
        sub = Execution(plan, inputs, recorder=self.recorder, listeners=self.listeners, max_concurrency=self.max_concurrency,
                        loader=self.loader, hooks=self._hooks, depth=self.depth + 1)
        sub.run.metadata["parent_run_id"] = self.run.id
        sub.run.metadata["parent_stage_id"] = stage.id
        await sub.execute()
        return sub.run.output


def reusable(sp: StagePlan, prior: StageResult, *, main: bool = False) -> bool:
    """Whether a stage's result from before a resume or replay may stand in for running it again.

    A completed result may; a failed one only when the stage's ``on_error``
    let the run go on (a failure that stopped the run is run again, so it
    fails again where it failed, or a trycatch around it catches it). Inside
    a loop or try body a control-flow stage always runs again: its output
    does not carry what it did to the stages beside it (skips, breaks), and
    the work stages inside it are reused instance by instance anyway.
    """
    status = prior.status
    if status is not _COMPLETED and (status is not _FAILED or sp.stage.error_policy() == "fail"):
        return False
    return main or sp.component.kind != "control_flow"


_RESULT_FIELDS = frozenset(StageResult.model_fields)
_new = object.__new__
_set = object.__setattr__


def _stage_result(fields: dict[str, Any]) -> StageResult:
    """A StageResult from already-valid values, without pydantic's per-call machinery.

    This is what ``model_construct`` does, minus its generic default and
    alias handling, which costs about 5 µs per stage on the hot path.
    """
    r = _new(StageResult)
    _set(r, "__dict__", fields)
    _set(r, "__pydantic_fields_set__", _RESULT_FIELDS)
    _set(r, "__pydantic_extra__", None)
    _set(r, "__pydantic_private__", None)
    return r


def _error_dict(exc: BaseException, pipeline: str, stage: str | None) -> dict[str, Any]:
    if isinstance(exc, FlowMasonError):
        d = exc.to_dict()
        d["pipeline"] = d.get("pipeline") or pipeline
        d["stage"] = d.get("stage") or stage
        return d
    return {"code": "stage_failed", "message": f"{type(exc).__name__}: {exc}", "pipeline": pipeline, "stage": stage,
            "field": None, "hint": None, "type": type(exc).__name__}


_EVENT_HOOKS = ("fm_run_started", "fm_run_finished", "fm_stage_started", "fm_stage_finished", "fm_stage_failed",
                "fm_stage_skipped", "fm_stage_event", "fm_wrap_stage")


def _innermost(ctx: Any, call: StageCall) -> StageCall:
    return call


def _hook_wrapper(hook: Any) -> StageWrapper:
    """The ``fm_wrap_stage`` hook as a stage wrapper: pluggy wrappers compose around the kernel's call."""

    def wrap(ctx: StageContext, call: StageCall) -> StageCall:
        # the kernel's own call is the innermost implementation; plugin wrappers receive it from `yield`
        return hook.call_extra([_innermost], {"ctx": ctx, "call": call})

    return wrap


def _event_hooks() -> dict[str, Callable[..., Any]]:
    """The event hooks some plugin implements (the others cost nothing per stage)."""
    from .plugins import get_plugin_manager

    pm = get_plugin_manager()
    return {name: getattr(pm.hook, name) for name in _EVENT_HOOKS if getattr(pm.hook, name).get_hookimpls()}


def plan_for(pipeline: Pipeline) -> Plan:
    """Compile with the loaded components, cached by the pipeline's content (``plan.compile_cached``)."""
    from .plugins import get_registry

    return compile_cached(pipeline, get_registry().components)


async def run_pipeline(
    pipeline: Pipeline,
    inputs: dict[str, Any] | None = None,
    *,
    recorder: Recorder | None = None,
    listeners: list[Listener] | None = None,
    max_concurrency: int | None = None,
    loader: Callable[[Any], Pipeline] | None = None,
    run: Run | None = None,
    resume: Mapping[str, StageResult] | None = None,
) -> Run:
    """Run a pipeline in the current event loop and return the finished Run."""
    ex = Execution(plan_for(pipeline), inputs, recorder=recorder, listeners=listeners, max_concurrency=max_concurrency,
                   loader=loader, run=run, resume=resume)
    return await ex.execute()
