"""Request and response models of the pipelines and runs routes (pydantic; they feed /openapi.json)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None
    hint: str | None = None


class ErrorOut(BaseModel):
    """Every error response: ``{"error": {"code", "message", "field", "hint"}}``."""

    error: ErrorBody


class StageIn(BaseModel):
    """One stage: an ``id`` and its component (``component_type``, or ``type`` as earlier files wrote it)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={
        "properties": {"component_type": {"type": "string", "minLength": 1},
                       "type": {"type": "string", "minLength": 1}},
        "anyOf": [{"required": ["component_type"]}, {"required": ["type"]}],
    })
    id: str = Field(min_length=1, max_length=128)

    @model_validator(mode="after")
    def _has_component(self) -> "StageIn":
        extra = self.model_extra or {}
        if not any(isinstance(extra.get(k), str) and extra[k] for k in ("component_type", "type")):
            raise ValueError("a stage needs component_type (a component name such as 'variable-set')")
        return self


class PipelineIn(BaseModel):
    """A `.pipeline.json` document: stages, or ``extends`` a saved base (the kernel's model checks the rest)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={
        "anyOf": [{"required": ["stages"], "properties": {"stages": {"minItems": 1}}}, {"required": ["extends"]}],
    })
    id: str | None = Field(default=None, min_length=1, max_length=128)
    name: str | None = Field(default=None, max_length=256)
    extends: str | None = Field(default=None, min_length=1, max_length=256)
    stages: list[StageIn] = Field(default_factory=list, max_length=2000)

    @model_validator(mode="after")
    def _has_stages(self) -> "PipelineIn":
        if not self.stages and not self.extends:
            raise ValueError("the pipeline has no stages (give stages, or extends a saved pipeline)")
        return self


class PipelineDoc(BaseModel):
    """Any JSON object: ``/pipelines/validate`` answers what is wrong with it instead of refusing it."""

    model_config = ConfigDict(extra="allow")


class PipelineOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    version: int
    latest_version: int
    label: str | None = None
    definition: dict[str, Any] | None = None


class PipelineList(BaseModel):
    items: list[dict[str, Any]]
    cursor: str | None = None


class ValidationOut(BaseModel):
    valid: bool
    problems: list[dict[str, Any]] = Field(default_factory=list)
    stages: int = 0


class RunIn(BaseModel):
    """Start a run of a saved pipeline (``pipeline_id``, optional ``version``) or of an inline ``pipeline``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "oneOf": [{"required": ["pipeline_id"], "not": {"required": ["pipeline"]}},
                  {"required": ["pipeline"], "not": {"required": ["pipeline_id"]}}],
    })
    pipeline_id: str | None = Field(default=None, max_length=128)
    version: int | None = Field(default=None, ge=1)
    pipeline: PipelineIn | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_pipeline(self) -> "RunIn":
        if (self.pipeline_id is None) == (self.pipeline is None):
            raise ValueError("give pipeline_id (a saved pipeline) or pipeline (an inline definition), one of the two")
        return self


class RunOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    pipeline_id: str
    status: str


class RunList(BaseModel):
    items: list[dict[str, Any]]
    cursor: str | None = None


class ValueLink(BaseModel):
    """Where a value too large for this answer is served whole (``GET href``: its JSON, or 307 to a download URL)."""

    href: str
    size_bytes: int


class RunResult(BaseModel):
    run_id: str
    status: str
    finished: bool
    output: Any = None
    error: dict[str, Any] | None = None
    # fields left null here because the answer's values reached 4 MB: fetch each from its link
    value_links: dict[str, ValueLink] | None = None


class StagePage(BaseModel):
    """Stage results (each may carry ``value_links``, as ``RunResult``); pass ``cursor`` back for the next page."""

    items: list[dict[str, Any]]
    cursor: str | None = None
