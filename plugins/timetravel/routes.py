"""HTTP routes for time travel (registered through ``fm_register_routes``).

Filled in against the ``plugins/http_api`` contract; until that plugin
exists nothing calls this.
"""
from __future__ import annotations

from typing import Any


def register_routes(register: Any) -> None:
    return None
