"""Request and response models of the pipelines and runs routes (pydantic; they feed /openapi.json)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None
    hint: str | None = None


class ErrorOut(BaseModel):
    """Every error response: ``{"error": {"code", "message", "field", "hint"}}``."""

    error: ErrorBody


class PipelineIn(BaseModel):
    """A `.pipeline.json` document (validated fully by the kernel's model after this shape check)."""

    model_config = ConfigDict(extra="allow")
    id: str | None = Field(default=None, max_length=128)
    name: str | None = Field(default=None, max_length=256)
    stages: list[dict[str, Any]] = Field(default_factory=list, max_length=2000)


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

    model_config = ConfigDict(extra="forbid")
    pipeline_id: str | None = Field(default=None, max_length=128)
    version: int | None = Field(default=None, ge=1)
    pipeline: dict[str, Any] | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)


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
