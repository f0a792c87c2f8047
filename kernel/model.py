"""Pydantic models: the `.pipeline.json` format, runs, stage results, events.

The pipeline models read the files users of the earlier FlowMason product
already have, unchanged: `component_type`, `type` and `component` all name
the component, `on_error` and `error_handling` both name the error policy.
Keys the model does not know are kept (`extra="allow"`) for the compiler
to judge (``kernel/keys.py``: tolerated, or an error with a "did you
mean"). Run records are plain models that the storage layer turns into
items.
"""
from __future__ import annotations

import time
import uuid
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import PipelineLoadError

def _normalise_type(name: str) -> str:
    return name.strip().lower().replace("_", "-")


class RetryConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    # a retry_config that names no count retries 3 times, as the earlier product's schema and runtime did
    max_retries: int = Field(default=3, ge=0, le=100)
    initial_delay_ms: int = Field(default=200, ge=0)
    max_delay_ms: int = Field(default=30_000, ge=0)
    backoff_multiplier: float = Field(default=2.0, ge=1.0, le=10.0)

    @model_validator(mode="before")
    @classmethod
    def _accept_aliases(cls, data: Any) -> Any:
        # the earlier product's schema calls the first delay `backoff_ms`
        if isinstance(data, dict) and "initial_delay_ms" not in data and "backoff_ms" in data:
            data = {**data, "initial_delay_ms": data["backoff_ms"]}
        return data


class Position(BaseModel):
    model_config = ConfigDict(extra="allow")
    x: float = 0
    y: float = 0


class Stage(BaseModel):
    """One node of the pipeline graph."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str = Field(min_length=1)
    component_type: str = Field(min_length=1, description="Component name, kebab-case (also read from `type`).")
    name: str | None = None
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    input_mapping: dict[str, Any] = Field(default_factory=dict)
    provider: str | None = None
    model: str | None = None
    llm_settings: dict[str, Any] | None = None
    timeout_ms: int | None = Field(default=None, ge=1)
    retry_config: RetryConfig | None = None
    on_error: str | dict[str, Any] | None = None
    fallback_output: Any = None
    enabled: bool = True
    position: Position | None = None

    @model_validator(mode="before")
    @classmethod
    def _accept_aliases(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if not data.get("component_type"):
                # `type` is the earlier product's canonical key, `component` what its `flowmason init` writes
                named = data.get("type") or data.get("component")
                if named:
                    data["component_type"] = named
            if data.get("on_error") is None and data.get("error_handling") is not None:
                data["on_error"] = data["error_handling"]
            policy = data.get("on_error")
            if isinstance(policy, dict) and str(policy.get("on_error") or policy.get("action") or "").lower() == "retry":
                # earlier files: {"on_error": "retry", "max_retries": N, "retry_delay": ms}
                if not data.get("retry_config"):
                    data["retry_config"] = {
                        "max_retries": int(policy.get("max_retries", 3)),
                        "initial_delay_ms": int(policy.get("retry_delay", policy.get("retry_delay_ms", 1000))),
                    }
                data["on_error"] = policy.get("then") or "fail"
            if data.get("depends_on") is None:
                data["depends_on"] = []
            if data.get("config") is None:
                data["config"] = {}
            if data.get("input_mapping") is None:
                data["input_mapping"] = {}
        return data

    @model_validator(mode="after")
    def _normalise(self) -> "Stage":
        self.component_type = _normalise_type(self.component_type)
        return self

    @property
    def label(self) -> str:
        return self.name or self.id

    def error_policy(self) -> str:
        """`fail` (default), `continue`, `skip` or `fallback`."""
        policy = self.on_error
        if isinstance(policy, dict):
            policy = policy.get("action") or policy.get("strategy") or policy.get("on_error")
        if not policy:
            return "fallback" if self.fallback_output is not None else "fail"
        policy = str(policy).lower().replace("_", "-")
        if policy in ("retry", "abort", "stop", "raise"):
            return "fail"  # retries come from retry_config; after them the stage fails
        return policy

    def settings(self) -> dict[str, Any]:
        """Component settings: `config` with `input_mapping` laid over it."""
        if not self.input_mapping:
            return self.config
        merged = dict(self.config)
        merged.update(self.input_mapping)
        return merged


class Pipeline(BaseModel):
    """A `.pipeline.json` document."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str | None = None
    name: str = ""
    version: str = "1.0.0"
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=dict)
    output_schema: dict[str, Any] = Field(default_factory=dict)
    stages: list[Stage] = Field(default_factory=list)
    output_stage_id: str | None = None
    extends: str | None = None
    abstract: bool = False
    overrides: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    # template metadata, as the earlier product's templates carry it
    category: str | None = None
    tags: list[str] = Field(default_factory=list)
    example_input: dict[str, Any] | None = None
    sample_input: dict[str, Any] | None = None  # what the earlier product's `flowmason init` writes

    def suggested_input(self) -> tuple[str, dict[str, Any]] | None:
        """(key, inputs) the file suggests for a run given none: ``sample_input``, else ``example_input``."""
        for key in ("sample_input", "example_input"):
            value = getattr(self, key)
            if value is not None:
                return key, value
        return None

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if data.get("version") is not None and not isinstance(data["version"], str):
                data["version"] = str(data["version"])
            for key in ("input_schema", "output_schema", "overrides", "metadata"):
                if data.get(key) is None:
                    data.pop(key, None)
            if data.get("stages") is None:
                data["stages"] = []
            if not data.get("name"):
                data["name"] = data.get("id") or "pipeline"
        return data

    @property
    def key(self) -> str:
        return self.id or self.name

    def stage_map(self) -> dict[str, Stage]:
        return {s.id: s for s in self.stages}


def _pydantic_problem(err: ValidationError, data: Any) -> tuple[str | None, str | None, str]:
    first = err.errors()[0]
    loc = list(first.get("loc", ()))
    stage = None
    field = ".".join(str(p) for p in loc) or None
    if len(loc) >= 2 and loc[0] == "stages" and isinstance(loc[1], int):
        try:
            stage = data["stages"][loc[1]].get("id") or f"#{loc[1]}"
        except Exception:  # noqa: BLE001 - best effort naming only
            stage = f"#{loc[1]}"
        field = ".".join(str(p) for p in loc[2:]) or None
    msg = first.get("msg", "invalid")
    if field == "component_type" and first.get("type") == "missing":
        msg = "the stage names no component: give it 'component_type' (or 'type', or 'component')"
    return stage, field, msg


def parse_pipeline(data: Any, *, source: str = "<pipeline>") -> Pipeline:
    """Build a Pipeline from decoded JSON, turning pydantic errors into FlowMason errors."""
    if not isinstance(data, dict):
        raise PipelineLoadError(
            f"expected a JSON object at the top level, got {type(data).__name__}",
            pipeline=source,
            hint="a pipeline file is an object with 'name' and 'stages'",
        )
    try:
        return Pipeline.model_validate(data)
    except ValidationError as err:
        stage, field, msg = _pydantic_problem(err, data)
        raise PipelineLoadError(
            msg,
            pipeline=str(data.get("id") or data.get("name") or source),
            stage=stage,
            field=field,
            hint="see `fm schema` for the pipeline format",
        ) from None


def load_pipeline(path: str | Path) -> Pipeline:
    """Read a `.pipeline.json` file; unreadable bytes or malformed JSON name the file and the place."""
    from .jsonfile import read_json

    return parse_pipeline(read_json(path, pipeline=str(path)), source=str(path))


class RunStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StageStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


def new_run_id() -> str:
    # time-ordered prefix so runs list newest-first by sort key
    return f"run_{int(time.time() * 1000):013x}{uuid.uuid4().hex[:10]}"


class StageResult(BaseModel):
    stage_id: str
    component_type: str
    status: StageStatus
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_ms: float | None = None
    attempts: int = 1
    usage: dict[str, Any] | None = None
    # foreach iterations record as "<stage>[i]"
    iteration: str | None = None


class Run(BaseModel):
    id: str = Field(default_factory=new_run_id)
    pipeline_id: str
    pipeline_name: str = ""
    pipeline_version: str = ""
    status: RunStatus = RunStatus.PENDING
    inputs: dict[str, Any] = Field(default_factory=dict)
    output: Any = None
    error: dict[str, Any] | None = None
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    duration_ms: float | None = None
    usage: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Event(BaseModel):
    """An execution event as delivered to listeners and streamed over SSE."""

    type: str  # run.started | run.finished | run.failed | stage.started | stage.finished | stage.failed | stage.skipped
    run_id: str
    stage_id: str | None = None
    at: float = Field(default_factory=time.time)
    data: dict[str, Any] = Field(default_factory=dict)
