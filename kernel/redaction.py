"""Keep secrets out of run history, events and logs.

A stage's rendered config is recorded as its input. Two kinds of values
are masked before anything leaves the executor (recorder, listeners,
event hooks); the component itself still gets the real config:

- values under keys that name a secret (authorization, api_key, token,
  password, secret, cookie, ...), at any depth;
- any text that came from ``{{env.NAME}}`` during this run, wherever it
  ended up (``"Bearer {{env.TOKEN}}"`` is recorded as ``"Bearer ***"``);
- in URLs, in configs and outputs alike, the password of ``user:pass@`` and
  the values of query parameters that name a secret (``api_key``, ``token``,
  ``key``, ``secret``, ``password``, ``signature``, ``X-Amz-Credential``...).

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


# query parameters whose value is a credential (matched on the whole name or its last word)
SENSITIVE_PARAM = re.compile(
    r"(^|[-_.])(api[-_]?key|apikey|key|access[-_]?key|token|jwt|secret|password|passwd|pwd|pass|signature|sig|"
    r"auth|authorization|credentials?|session|code)$",
    re.I,
)
_URL_KEY = re.compile(r"(^|[-_])(url|uri|href|link|endpoint|webhook|location)s?$", re.I)
_USERINFO = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/@\s:?#]*:)(?P<pw>[^/@\s?#]+)@", re.I)
_QUERY = re.compile(r"(?P<head>[?&;](?P<name>[^=&;#\s]+)=)(?P<value>[^&;#\s]*)")


def mask_url(text: str) -> str:
    """``text`` with URL passwords and secret query values masked; other text is returned as is."""
    if "://" not in text:
        return text
    text = _USERINFO.sub(lambda m: m.group("head") + MASK + "@", text)
    return _QUERY.sub(lambda m: m.group("head") + (MASK if m.group("value") and SENSITIVE_PARAM.search(
        m.group("name")) else m.group("value")), text)


def needs_redaction(config: Any) -> bool:
    """True when a config has a secret-looking key, reads the environment, or holds (or names) a URL."""
    if isinstance(config, dict):
        return any(SENSITIVE_KEY.search(str(k)) or _URL_KEY.search(str(k)) or needs_redaction(v)
                   for k, v in config.items())
    if isinstance(config, list):
        return any(needs_redaction(v) for v in config)
    if isinstance(config, str):
        return ("env." in config and "{{" in config) or "://" in config
    return False


def _longest_first(secrets: Iterable[str]) -> list[str]:
    # longest first, so a secret that contains another is masked whole
    return sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of ``value`` with secret keys and known secret strings masked."""
    return _walk(value, _longest_first(secrets))


def mask_strings(value: Any, secrets: Iterable[str]) -> Any:
    """Mask only known secret strings and URL credentials (for outputs, whose keys are the component's own)."""
    return _walk(value, _longest_first(secrets), keys=False)


def _walk(value: Any, secrets: list[str], keys: bool = True) -> Any:
    if isinstance(value, dict):
        return {k: (MASK if keys and SENSITIVE_KEY.search(str(k)) and v not in (None, "") else _walk(v, secrets, keys))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, secrets, keys) for v in value]
    if isinstance(value, str):
        for s in secrets:
            if s in value:
                value = value.replace(s, MASK)
        return mask_url(value)
    return value
