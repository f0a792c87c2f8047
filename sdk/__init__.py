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
    """Run a pipeline (a Pipeline, a dict or a path) to completion and return the finished Run."""
    import asyncio
    from pathlib import Path

    from .kernel import executor, model

    if isinstance(pipeline, (str, Path)):
        pipeline = model.load_pipeline(pipeline)
    elif isinstance(pipeline, dict):
        pipeline = model.parse_pipeline(pipeline)
    recorder = None
    if record:
        from .kernel.runs import RunRepository
        from .kernel.storage import open_store

        recorder = RunRepository(open_store(store))
    return asyncio.run(executor.run_pipeline(pipeline, inputs or {}, recorder=recorder))


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        from . import kernel

        value = getattr(kernel, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flowmason' has no attribute '{name}'")
