"""Static check of sub-pipeline references: every child a stage names exists and compiles.

A component lists the config keys that name another pipeline
(``Component.pipeline_refs``: subpipeline's ``pipeline_id``, ``pipeline``,
``pipeline_path``). ``check_children`` resolves each literal reference
through the runner's loader, the one the executor would use at run time
(files beside the referring pipeline, saved pipelines, ``scheme://``
loaders), applies inheritance and compiles the child, without running
anything; then does the same for the child's own children. A reference
that is a template (``{{input.child}}``) is known only at run time and is
not checked. Each child is checked once, so a pipeline that calls itself
does not loop here.
"""
from __future__ import annotations

from typing import Any, Mapping

from .errors import FlowMasonError, PipelineValidationError

MAX_DEPTH = 16  # as the executor's nesting limit


def check_children(pipeline: Any, loader: Any, components: Mapping[str, Any], *, _seen: set[str] | None = None,
                   _depth: int = 0) -> list[FlowMasonError]:
    """Problems with the sub-pipelines ``pipeline`` names (none when every child loads and compiles)."""
    from .plan import compile_cached

    seen = set() if _seen is None else _seen
    problems: list[FlowMasonError] = []
    if _depth >= MAX_DEPTH:
        return problems
    for stage in pipeline.stages:
        comp = components.get(stage.component_type)
        keys = comp.pipeline_refs if comp is not None else ()
        if not keys:
            continue
        sid = stage.id
        settings = stage.settings()
        for key in keys:
            ref = settings.get(key)
            if ref is None or (isinstance(ref, str) and ("{{" in ref or not ref.strip())):
                continue
            if not isinstance(ref, (str, dict)):
                continue
            label = ref if isinstance(ref, str) else f"<inline {ref.get('id') or ref.get('name') or 'pipeline'}>"
            if isinstance(ref, str):
                if ref in seen:
                    continue
                seen.add(ref)
            try:
                child = loader(ref)
                compile_cached(child, components)
            except PipelineValidationError as exc:
                problems.append(FlowMasonError(
                    f"sub-pipeline '{label}' is invalid: " + "; ".join(str(p) for p in exc.problems[:3])
                    + (f" (and {len(exc.problems) - 3} more)" if len(exc.problems) > 3 else ""),
                    pipeline=pipeline.key, stage=sid, field=f"config.{key}", hint=f"`fm validate` the child '{label}'",
                ))
                continue
            except FlowMasonError as exc:
                problems.append(FlowMasonError(
                    f"sub-pipeline '{label}': {exc.message}", pipeline=pipeline.key, stage=sid, field=f"config.{key}",
                    hint=exc.hint,
                ))
                continue
            if child.abstract:
                problems.append(FlowMasonError(
                    f"sub-pipeline '{label}' is abstract and cannot run on its own", pipeline=pipeline.key, stage=sid,
                    field=f"config.{key}", hint="name a pipeline that extends it",
                ))
                continue
            problems.extend(check_children(child, loader, components, _seen=seen, _depth=_depth + 1))
    return problems
