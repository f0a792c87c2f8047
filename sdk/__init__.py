"""FlowMason's Python API, for embedding and for plugin authors.

    from flowmason import load_pipeline, run, hookimpl, operator, control_flow

Names load lazily from ``flowmason.kernel`` so ``import flowmason`` stays cheap.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_NAMES = {
    "hookimpl", "Pipeline", "Stage", "Run", "StageResult", "load_pipeline", "parse_pipeline",
    "run_pipeline", "StageContext", "FlowMasonError", "component", "operator", "node", "control_flow",
    "open_store", "RunRepository",
}

__all__ = sorted(_NAMES | {"run"})


def run(pipeline: Any, inputs: dict[str, Any] | None = None, *, record: bool = False, store: str | None = None) -> Any:
    """Run a pipeline (a Pipeline, a dict, a path or a reference) to completion and return the finished Run.

    It goes through the same runner as ``fm run``: ``extends`` parents and
    sub-pipelines resolve the same way; ``record=True`` keeps the run in the
    store (``store`` a URL or path, default the user's store), where
    ``fm runs`` and ``fm serve`` see it. With ``inputs`` left out, the
    pipeline's own ``sample_input`` or ``example_input`` is used, with a
    ``UserWarning`` that says so (as ``fm run`` says so on stderr).
    """
    from flowmason.kernel.runner import Runner

    opened = None
    if store is not None:
        from flowmason.kernel.storage import open_store

        opened = open_store(store)
    runner = Runner(store=opened, record=record)
    if inputs is not None:
        return runner.run_sync(pipeline, inputs)
    loaded, loader = runner.load(pipeline)
    suggested = loaded.suggested_input()
    if suggested is not None:
        import warnings

        warnings.warn(f"no inputs given: using the pipeline's {suggested[0]}", UserWarning, stacklevel=2)
    return runner.run_sync(runner.compile(loaded), suggested[1] if suggested else {}, loader=loader)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        import flowmason.kernel as kernel

        value = getattr(kernel, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flowmason' has no attribute '{name}'")
