"""One error hierarchy for FlowMason.

Every error says what was wrong, where (pipeline, stage, field) and what to
do about it, so the CLI, the HTTP API and the logs can all print the same
message without guessing.
"""
from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """The exit status of every `fm` command: one table, the same situation gives the same code.

    | code | meaning |
    |------|---------|
    | 0    | success |
    | 1    | it ran and failed: a stage failed, a test failed, a check found something to do |
    | 2    | what was given is wrong: an unknown option, bad ``--input``, a file that is missing, unreadable or not a valid pipeline |
    | 3    | the store has no such thing: an unknown run id, snapshot, stage or component |
    | 4    | the setup is wrong: a missing extra, a bad ``FM_*`` setting, a plugin or a store that cannot be used |
    | 130  | cancelled (Ctrl-C, SIGTERM) |

    Each error class carries its code (``FlowMasonError.exit_code``); click's
    own usage errors are 2 as well.
    """

    OK = 0
    FAILED = 1
    USAGE = 2
    NOT_FOUND = 3
    SETUP = 4
    CANCELLED = 130


class FlowMasonError(Exception):
    """Base error: a message plus the place it happened and a hint to fix it."""

    code = "error"
    exit_code: int = ExitCode.FAILED

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
    exit_code = ExitCode.USAGE


class PipelineValidationError(FlowMasonError):
    """The pipeline is well-formed JSON but not a valid graph; carries every problem found."""

    code = "pipeline_invalid"
    exit_code = ExitCode.USAGE

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
    exit_code = ExitCode.NOT_FOUND


class TemplateError(FlowMasonError):
    """A `{{...}}` reference or expression could not be compiled or evaluated."""

    code = "template"


class InputError(FlowMasonError):
    """Run inputs are missing or do not match the pipeline's input_schema, or a command option's value is wrong."""

    code = "bad_input"
    exit_code = ExitCode.USAGE


class StageError(FlowMasonError):
    """A stage raised while running."""

    code = "stage_failed"


class StageTimeoutError(StageError):
    code = "stage_timeout"


class RunCancelledError(FlowMasonError):
    code = "cancelled"
    exit_code = ExitCode.CANCELLED


class PluginError(FlowMasonError):
    code = "plugin"
    exit_code = ExitCode.SETUP


class ConfigError(FlowMasonError):
    code = "config"
    exit_code = ExitCode.SETUP


class NotFoundError(FlowMasonError):
    code = "not_found"
    exit_code = ExitCode.NOT_FOUND


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
    exit_code = ExitCode.SETUP


def require_extra(modules: tuple[str, ...], extra: str, what: str, **place: Any) -> None:
    """Import ``modules`` or raise a ConfigError naming the extra to install (never a bare ImportError).

    Called before anything is asked of the user, so a missing package is the
    first thing they hear about, with the command that fixes it.
    """
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(f"{what} needs the {extra} extra ({module} is not installed)",
                              hint=f"pip install 'flowmason[{extra}]'", **place) from None
