"""The FlowMason kernel: what every process loads.

Importing this package is cheap (pluggy only); the model, executor and
storage modules load on first use, so CLI start-up and Lambda cold start
pay only for what they touch. No cloud or LLM SDK is imported here.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "hookimpl": "plugins",
    "get_plugin_manager": "plugins",
    "get_registry": "plugins",
    "Pipeline": "model",
    "Stage": "model",
    "Run": "model",
    "StageResult": "model",
    "load_pipeline": "model",
    "parse_pipeline": "model",
    "run_pipeline": "executor",
    "Execution": "executor",
    "StageContext": "components",
    "compile_plan": "plan",
    "Store": "storage",
    "open_store": "storage",
    "RunRepository": "runs",
    "FlowMasonError": "errors",
    "component": "components",
    "operator": "components",
    "node": "components",
    "control_flow": "components",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowmason.kernel' has no attribute '{name}'")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
