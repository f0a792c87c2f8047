"""One error hierarchy for FlowMason.

Every error says what was wrong, where (pipeline, stage, field) and what to
do about it, so the CLI, the HTTP API and the logs can all print the same
message without guessing.
"""
from __future__ import annotations

from typing import Any


class FlowMasonError(Exception):
    """Base error: a message plus the place it happened and a hint to fix it."""

    code = "error"
    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        pipeline: str | None = None,
        stage: str | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.pipeline = pipeline
        self.stage = stage
        self.field = field
        self.hint = hint

    def where(self) -> str:
        parts = []
        if self.pipeline:
            parts.append(f"pipeline '{self.pipeline}'")
        if self.stage:
            parts.append(f"stage '{self.stage}'")
        if self.field:
            parts.append(f"field '{self.field}'")
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.where()
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f" (fix: {self.hint})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "pipeline": self.pipeline,
            "stage": self.stage,
            "field": self.field,
            "hint": self.hint,
        }


class PipelineLoadError(FlowMasonError):
    """The pipeline file could not be read or parsed."""

    code = "pipeline_load"


class PipelineValidationError(FlowMasonError):
    """The pipeline is well-formed JSON but not a valid graph; carries every problem found."""

    code = "pipeline_invalid"

    def __init__(self, problems: list[FlowMasonError], *, pipeline: str | None = None) -> None:
        self.problems = problems
        first = problems[0] if problems else None
        msg = f"{len(problems)} problem(s) found" if len(problems) != 1 else first.message
        super().__init__(
            msg,
            pipeline=pipeline,
            stage=first.stage if first and len(problems) == 1 else None,
            field=first.field if first and len(problems) == 1 else None,
            hint=first.hint if first and len(problems) == 1 else None,
        )

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        lines = [f"pipeline '{self.pipeline}': {len(self.problems)} problems"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["problems"] = [p.to_dict() for p in self.problems]
        return d


class ComponentNotFoundError(FlowMasonError):
    code = "unknown_component"


class TemplateError(FlowMasonError):
    """A `{{...}}` reference or expression could not be compiled or evaluated."""

    code = "template"


class InputError(FlowMasonError):
    """Run inputs are missing or do not match the pipeline's input_schema."""

    code = "bad_input"
    exit_code = 2


class StageError(FlowMasonError):
    """A stage raised while running."""

    code = "stage_failed"


class StageTimeoutError(StageError):
    code = "stage_timeout"


class RunCancelledError(FlowMasonError):
    code = "cancelled"
    exit_code = 130


class PluginError(FlowMasonError):
    code = "plugin"


class ConfigError(FlowMasonError):
    code = "config"


class NotFoundError(FlowMasonError):
    code = "not_found"


class StorageError(FlowMasonError):
    """Base for every storage failure; backends raise its subclasses, never raw driver errors."""

    code = "storage"


class ConditionFailedError(StorageError):
    """A conditional write lost: the item exists (if_absent) or its version moved on."""

    code = "condition_failed"


class ItemTooLargeError(StorageError):
    code = "item_too_large"


class ValueNotStoredError(StorageError):
    """A value too large for an item could not go to the blob store (none configured, or it failed)."""

    code = "value_not_stored"


class TransactionError(StorageError):
    code = "transaction_failed"


class StoreUnavailableError(StorageError):
    """The store is locked, corrupt, throttled past retries, or unreachable."""

    code = "store_unavailable"
