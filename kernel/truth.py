"""The one truthiness rule: when a condition, filter or flag counts as true (control flow and operators).

A condition usually arrives as text (a template over input, an HTTP body,
a model's answer), so the words people write for "no" are false whether
they were typed in the file or rendered from ``{{...}}``: ``"false"``,
``"0"``, ``"no"``, ``"off"`` and ``""`` (any case, surrounding spaces
ignored), and likewise ``None``, ``False``, ``0``, ``[]`` and ``{}``.
Any other value is true. conditional, return, break-loop, continue-loop
(``condition`` and ``condition_expression``), foreach's
``filter_expression`` and the boolean config flags all use ``truthy``.
"""
from __future__ import annotations

from typing import Any

FALSE_WORDS = frozenset({"false", "0", "no", "off", ""})
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})


def truthy(value: Any) -> bool:
    """True unless ``value`` is one of the false values above."""
    if isinstance(value, str):
        return value.strip().lower() not in FALSE_WORDS
    return bool(value)


def is_word(text: str) -> bool:
    """True when ``text`` is a plain true/false word, not an expression to evaluate."""
    word = text.strip().lower()
    return word in FALSE_WORDS or word in TRUE_WORDS
