"""Keep secrets out of run history, events and logs.

A stage's rendered config is recorded as its input. Two kinds of values
are masked before anything leaves the executor (recorder, listeners,
event hooks); the component itself still gets the real config:

- values under keys that name a secret (authorization, api_key, token,
  password, secret, cookie, ...), at any depth;
- any text that came from ``{{env.NAME}}`` during this run, wherever it
  ended up (``"Bearer {{env.TOKEN}}"`` is recorded as ``"Bearer ***"``).

The planner decides once per stage whether masking is needed, so stages
without secrets pay nothing.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

MASK = "***"
# whole-word endings, so `max_tokens` or `token_count` stay visible but `x-api-key`,
# `refresh_token` and `client_secret` do not
SENSITIVE_KEY = re.compile(
    r"(^|[-_ ])(authorization|api[-_]?key|apikey|access[-_]?key|secret|password|passwd|passphrase|token|cookie|"
    r"set-cookie|private[-_]?key|credentials?)$",
    re.I,
)


def needs_redaction(config: Any) -> bool:
    """True when a config has a secret-looking key or reads the environment."""
    if isinstance(config, dict):
        return any(SENSITIVE_KEY.search(str(k)) or needs_redaction(v) for k, v in config.items())
    if isinstance(config, list):
        return any(needs_redaction(v) for v in config)
    if isinstance(config, str):
        return "env." in config and "{{" in config
    return False


def _longest_first(secrets: Iterable[str]) -> list[str]:
    # longest first, so a secret that contains another is masked whole
    return sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of ``value`` with secret keys and known secret strings masked."""
    return _walk(value, _longest_first(secrets))


def mask_strings(value: Any, secrets: Iterable[str]) -> Any:
    """Mask only known secret strings (for outputs, whose keys are the component's own)."""
    ordered = _longest_first(secrets)
    if not ordered:
        return value
    return _walk(value, ordered, keys=False)


def _walk(value: Any, secrets: list[str], keys: bool = True) -> Any:
    if isinstance(value, dict):
        return {k: (MASK if keys and SENSITIVE_KEY.search(str(k)) and v not in (None, "") else _walk(v, secrets, keys))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, secrets, keys) for v in value]
    if isinstance(value, str) and secrets:
        for s in secrets:
            if s in value:
                value = value.replace(s, MASK)
    return value
