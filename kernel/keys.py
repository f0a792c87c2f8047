"""Which keys a stage, its ``retry_config`` and a closed component config may carry; a "did you mean" for the rest.

The models keep keys they do not know (``extra="allow"``), so files from
the earlier FlowMason product load unchanged. The compiler then sorts the
unknown ones: keys that product's Studio, schema and generators write for
editors and metadata are tolerated (``EARLIER_STAGE_KEYS``, listed in
README.md); anything else is a misspelling until shown otherwise, and an
error naming the stage and the key, with the closest known key. Before,
``"depend_on": ["a"]`` passed and ran the stage before ``a``, and
``"max_retry": 3`` meant no retries at all.

A component opts into the same check for its config by declaring a
config schema with ``"additionalProperties": false`` (the control-flow
components do).
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Iterable, Mapping

from .components import Component
from .model import RetryConfig, Stage

# other names the model reads for a field (kernel/model.py `_accept_aliases`)
STAGE_ALIASES = frozenset({"type", "component", "error_handling"})

# What the earlier product writes on a stage besides the fields FlowMason reads: its canonical
# pipeline schema (`metadata`), its runtime config (`component_package`), its Studio's canvas
# (`position` is a field here), and its pipeline generators (`generated_from`, `rationale`).
EARLIER_STAGE_KEYS = frozenset({"metadata", "component_package", "generated_from", "rationale"})

# retry_config keys of the earlier product's schema: `backoff_ms` is read as `initial_delay_ms`;
# these two are accepted but not acted on (every failure is retried), which the compile warns about.
RETRY_ALIASES = frozenset({"backoff_ms"})
RETRY_NOT_ACTED_ON = frozenset({"retry_on_errors", "retry_on_status_codes"})

Problem = Callable[..., None]  # (message, stage=, fld=, hint=)


def did_you_mean(key: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _stage_known() -> frozenset[str]:
    return frozenset(Stage.model_fields) | STAGE_ALIASES | EARLIER_STAGE_KEYS


def _retry_known() -> frozenset[str]:
    return frozenset(RetryConfig.model_fields) | RETRY_ALIASES | RETRY_NOT_ACTED_ON


def check_keys(
    stages: Iterable[Stage], settings: Iterable[dict[str, Any]], comps: Mapping[str, Component],
    problem: Problem, warn: Callable[[str], None],
) -> None:
    """Report every unknown stage, retry_config and closed-config key of ``stages``."""
    stage_known = retry_known = None
    for st, conf in zip(stages, settings):
        if st.model_extra:
            stage_known = stage_known or _stage_known()
            for key in st.model_extra:
                if key not in stage_known:
                    problem(f"unknown stage key '{key}'", stage=st.id, fld=key,
                            hint=did_you_mean(key, stage_known)
                            or "see `fm schema` for the stage keys; put your own data under 'metadata'")
        retry = st.retry_config
        if retry is not None and retry.model_extra:
            retry_known = retry_known or _retry_known()
            for key in retry.model_extra:
                if key in RETRY_NOT_ACTED_ON:
                    warn(f"stage '{st.id}': retry_config '{key}' is not acted on; every failure is retried")
                elif key not in retry_known:
                    problem(f"unknown retry_config key '{key}'", stage=st.id, fld=f"retry_config.{key}",
                            hint=did_you_mean(key, retry_known) or f"the keys are: {', '.join(sorted(RetryConfig.model_fields))}")
        comp = comps.get(st.id)
        schema = comp.config_schema if comp is not None else None
        if schema and schema.get("additionalProperties") is False:
            props = schema.get("properties", {})
            for key in conf:
                if key not in props:
                    problem(f"unknown config key '{key}' for component '{comp.name}'", stage=st.id,
                            fld=f"config.{key}",
                            hint=did_you_mean(key, props) or f"see `fm schema --component {comp.name}`")
