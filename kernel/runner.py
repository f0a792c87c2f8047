"""The one way a run starts: load → resolve → validate → compile → execute.

Every entry point goes through ``Runner``: ``fm run``, the Python API, the
HTTP API and its worker, ``fm test``, replay and what-if, sub-pipelines
(through the loader the runner hands the executor), and later the
debugger, the edge runtime and the operator. So a pipeline with
``extends`` or a sub-pipeline behaves the same whichever way it is run.

References go through ``Loader``: a ``scheme://rest`` reference goes to
the loader a plugin registered for that scheme (``fm_register_loaders``);
a plain reference is a file path next to the referring pipeline, then a
pipeline saved in the store (``ID`` or ``ID@VERSION``). ``extends``
parents are loaded raw (inheritance merges them itself); what the runner
runs, and what sub-pipelines run, is resolved through
``fm_resolve_pipeline``.

The caller chooses what watches the run: a recorder (the run history),
listeners, the stage gate (a debugger), stage wrappers (a durable host's
fan-out), a concurrency limit.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .errors import FlowMasonError, NotFoundError, PipelineLoadError
from .model import Pipeline, Run, StageResult, load_pipeline, parse_pipeline

_SCHEME_SEP = "://"


class LoadContext:
    """What a scheme loader may use: where the referring pipeline lives, the store and tenant namespace.

    ``files`` is False on servers: a tenant's pipeline must not read the server's files.
    """

    def __init__(self, base: Path, store: Any = None, namespace: str = "", files: bool = True) -> None:
        self.base = base
        self.store = store
        self.namespace = namespace
        self.files = files

    def file(self, ref: str) -> Path | None:
        """The pipeline file a plain reference names, next to the referring pipeline (or absolute)."""
        if not self.files:
            return None
        p = Path(ref)
        base = self.base
        candidates = [p] if p.is_absolute() else [base / ref, base / f"{ref}.pipeline.json", base / f"{ref}.json"]
        return next((c for c in candidates if c.is_file()), None)


class Loader:
    """Finds the pipelines that references name (what a user runs, ``extends`` parents, sub-pipelines)."""

    def __init__(self, base: str | Path = ".", *, store: Any = None, namespace: str = "", files: bool = True,
                 schemes: Mapping[str, Callable[[str, LoadContext], Any]] | None = None) -> None:
        self.context = LoadContext(Path(base), store, namespace, files)
        self._schemes = schemes

    @property
    def schemes(self) -> Mapping[str, Callable[[str, LoadContext], Any]]:
        if self._schemes is None:
            from .plugins import get_registry

            self._schemes = get_registry().loaders
        return self._schemes

    def raw(self, ref: Any) -> Pipeline:
        """The pipeline a reference names, as written (inheritance not applied)."""
        if isinstance(ref, Pipeline):
            return ref
        if isinstance(ref, dict):
            return parse_pipeline(ref)
        if isinstance(ref, Path):
            return load_pipeline(ref)
        text = str(ref)
        if _SCHEME_SEP in text:
            scheme, rest = text.split(_SCHEME_SEP, 1)
            load = self.schemes.get(scheme)
            if load is None:
                raise PipelineLoadError(
                    f"no loader for '{scheme}://' references (known: {', '.join(sorted(self.schemes)) or 'none'})",
                    field="pipeline_id", hint="install the plugin that provides it, or give a file path",
                )
            return _as_pipeline(load(rest, self.context), text)
        path = self.context.file(text)
        if path is not None:
            return load_pipeline(path)
        if self.context.store is not None and "store" in self.schemes:
            try:
                return _as_pipeline(self.schemes["store"](text, self.context), text)
            except NotFoundError:
                pass
        places = ([f"in {self.context.base}"] if self.context.files else []) + (
            ["in the saved pipelines"] if self.context.store is not None else [])
        where = " or ".join(places) or "nowhere: no files and no store"
        raise PipelineLoadError(
            f"cannot find pipeline '{text}' (looked {where})", field="pipeline_id",
            hint="give a path relative to the referring pipeline file, an id with a matching .pipeline.json "
                 "beside it, or the id of a saved pipeline",
        )

    def resolve(self, pipeline: Pipeline) -> Pipeline:
        """Apply inheritance and composition (``fm_resolve_pipeline``); parents load through this loader."""
        from .plugins import get_plugin_manager

        resolved = get_plugin_manager().hook.fm_resolve_pipeline(pipeline=pipeline, loader=self.raw)
        return resolved or pipeline

    def __call__(self, ref: Any) -> Pipeline:
        """The pipeline a reference names, resolved: what the executor runs for a sub-pipeline."""
        return self.resolve(self.raw(ref))


def _as_pipeline(found: Any, ref: str) -> Pipeline:
    """A scheme loader may answer with a Pipeline or with the definition (a dict) it read."""
    return found if isinstance(found, Pipeline) else parse_pipeline(found, source=ref)


class Runner:
    """Loads, resolves, validates, compiles and runs pipelines with what the caller wants watching."""

    def __init__(
        self, *, store: Any = None, namespace: str = "", base: str | Path | None = None, files: bool = True,
        record: bool = False,
        recorder: Any = None, listeners: Iterable[Any] = (), gate: Any = None, wrappers: Iterable[Any] = (),
        max_concurrency: int | None = None,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.base = Path(base) if base is not None else Path(".")
        self.files = files
        if recorder is None and record:
            from .runs import RunRepository
            from .storage import open_store

            self.store = self.store if self.store is not None else open_store()
            recorder = RunRepository(self.store, namespace)
        self.recorder = recorder
        self.listeners = list(listeners)
        self.gate = gate
        self.wrappers = list(wrappers)
        self.max_concurrency = max_concurrency

    def loader(self, base: str | Path | None = None) -> Loader:
        return Loader(base if base is not None else self.base, store=self.store, namespace=self.namespace,
                      files=self.files)

    def load(self, ref: Any) -> tuple[Pipeline, Loader]:
        """The resolved pipeline ``ref`` names, and the loader for the references inside it."""
        if self.files and isinstance(ref, (str, Path)) and _SCHEME_SEP not in str(ref) and Path(ref).is_file():
            loader = self.loader(Path(ref).parent)  # its references are next to it
            return loader.resolve(load_pipeline(Path(ref))), loader
        loader = self.loader()
        return loader(ref), loader

    def compile(self, pipeline: Pipeline, *, runnable: bool = True) -> Any:
        """Validate and compile (cached); raises PipelineValidationError with every problem.

        ``runnable=False`` checks an abstract base too (``fm validate``), which cannot run on its own.
        """
        from .executor import plan_for

        if runnable and pipeline.abstract:
            raise FlowMasonError("the pipeline is abstract and cannot run on its own", pipeline=pipeline.key,
                                 field="abstract", hint="run a pipeline that extends it")
        return plan_for(pipeline)

    def validate(self, pipeline: Pipeline, loader: Loader) -> Any:
        """What ``fm validate`` and the API check: ``compile`` (an abstract base allowed) plus the sub-pipelines
        the stages name, resolved through ``loader`` without running them; raises PipelineValidationError."""
        from .errors import PipelineValidationError
        from .plugins import get_registry
        from .subpipelines import check_children

        children = check_children(pipeline, loader, get_registry().components)
        try:
            plan = self.compile(pipeline, runnable=False)
        except PipelineValidationError as exc:
            if not children:
                raise
            raise PipelineValidationError(exc.problems + children, pipeline=pipeline.key) from None  # all at once
        if children:
            raise PipelineValidationError(children, pipeline=pipeline.key)
        return plan

    def prepare(self, ref: Any) -> tuple[Any, Loader]:
        """Load, resolve and compile: the plan and the loader, ready for ``execution``."""
        pipeline, loader = self.load(ref)
        return self.compile(pipeline), loader

    def execution(self, ref: Any, inputs: dict[str, Any] | None = None, *, run: Run | None = None,
                  resume: Mapping[str, StageResult] | None = None, loader: Loader | None = None,
                  **options: Any) -> Any:
        """An ``Execution`` ready to start (``await ex.execute()``), for callers that steer it (cancel, suspend).

        ``loader``: the one ``load`` returned with the pipeline, when the caller loaded it first;
        ``ref`` may then be the plan ``compile`` returned, so it is not resolved and compiled again.
        """
        from .executor import Execution
        from .plan import Plan

        if loader is None:
            plan, loader = self.prepare(ref)
        elif isinstance(ref, Plan):
            plan = ref
        else:
            plan = self.compile(loader.resolve(ref) if isinstance(ref, Pipeline) else loader(ref))
        ex = Execution(
            plan, inputs, run=run, resume=resume, loader=loader, recorder=options.pop("recorder", self.recorder),
            listeners=options.pop("listeners", self.listeners), gate=options.pop("gate", self.gate),
            wrappers=options.pop("wrappers", self.wrappers),
            max_concurrency=options.pop("max_concurrency", self.max_concurrency), **options,
        )
        if ex.recorder is not None and loader.context.files:
            # where its file references resolve: what another process needs to resume the run
            ex.run.metadata.setdefault("base", str(loader.context.base.resolve()))
        return ex

    async def run(self, ref: Any, inputs: dict[str, Any] | None = None, **options: Any) -> Run:
        """Run to the end in the current event loop; returns the finished Run (raises on failure, after recording)."""
        return await self.execution(ref, inputs, **options).execute()

    def run_sync(self, ref: Any, inputs: dict[str, Any] | None = None, **options: Any) -> Run:
        return asyncio.run(self.run(ref, inputs, **options))
