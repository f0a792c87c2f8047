"""Pipeline inheritance: `extends`, `overrides` and `abstract`, through `fm_resolve_pipeline`.

Merge rules are the earlier product's, so existing files resolve the same:
parent stages come first in their order; a child stage with the same id
replaces the parent's; new child stages are appended; ``overrides``
(stage id -> partial stage) deep-merge into inherited stages; input and
output schemas merge (child properties win, required fields union); the
child's identity fields win. Chains resolve base-first; a cycle or an
override of an unknown stage is an error naming both pipelines.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

from flowmason.kernel.errors import PipelineLoadError
from flowmason.kernel.model import Pipeline, parse_pipeline
from flowmason.kernel.plugins import hookimpl

MAX_DEPTH = 32


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_schema(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(parent)
    if "properties" in child:
        merged.setdefault("properties", {}).update(child["properties"])
    if "required" in child:
        merged["required"] = sorted(set(merged.get("required", [])) | set(child["required"]))
    for key, value in child.items():
        if key not in ("properties", "required"):
            merged[key] = value
    return merged


def merge(parent: Pipeline, child: Pipeline) -> Pipeline:
    pdata = parent.model_dump(mode="json", exclude_none=True)
    cdata = child.model_dump(mode="json", exclude_none=True)
    parent_stages = {s["id"]: s for s in pdata["stages"]}
    child_stages = {s["id"]: s for s in cdata["stages"]}
    for sid, patch in (child.overrides or {}).items():
        if sid not in parent_stages:
            raise PipelineLoadError(
                f"overrides stage '{sid}', which '{parent.key}' does not have", pipeline=child.key,
                field=f"overrides.{sid}", hint=f"use one of: {', '.join(parent_stages)}",
            )
        if not isinstance(patch, dict):
            raise PipelineLoadError("an override must be an object of stage fields", pipeline=child.key,
                                    field=f"overrides.{sid}")
        parent_stages[sid] = _deep_merge(parent_stages[sid], patch)
    stages = [child_stages.get(sid, parent_stages[sid]) for sid in parent_stages]
    stages += [s for sid, s in child_stages.items() if sid not in parent_stages]
    merged = {**pdata, **{k: v for k, v in cdata.items() if k not in ("stages", "overrides")}}
    merged.update(
        stages=stages,
        extends=None,
        overrides={},
        abstract=child.abstract,
        description=child.description or parent.description,
        input_schema=_merge_schema(pdata.get("input_schema", {}), cdata.get("input_schema", {})),
        output_schema=_merge_schema(pdata.get("output_schema", {}), cdata.get("output_schema", {})),
        tags=sorted(set(parent.tags) | set(child.tags)),
        output_stage_id=child.output_stage_id or parent.output_stage_id,
        metadata={**parent.metadata, **child.metadata},
    )
    return parse_pipeline(merged, source=child.key)


def resolve(pipeline: Pipeline, loader: Callable[[Any], Pipeline]) -> Pipeline:
    chain = [pipeline]
    seen = {pipeline.key}
    current = pipeline
    while current.extends:
        if len(chain) > MAX_DEPTH:
            raise PipelineLoadError(f"inheritance deeper than {MAX_DEPTH} levels", pipeline=pipeline.key, field="extends")
        parent = loader(current.extends)
        if parent.key in seen:
            names = " -> ".join(p.key for p in chain) + f" -> {parent.key}"
            raise PipelineLoadError(f"inheritance cycle: {names}", pipeline=pipeline.key, field="extends",
                                    hint="remove one of the extends references")
        seen.add(parent.key)
        chain.append(parent)
        current = parent
    result = chain[-1]
    for child in reversed(chain[:-1]):
        result = merge(result, child)
    return result


@hookimpl
def fm_resolve_pipeline(pipeline, loader):
    if not pipeline.extends:
        return None
    return resolve(pipeline, loader)
