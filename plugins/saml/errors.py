"""The SAML error: refused messages answer 401 with a reason that names the failed check."""
from __future__ import annotations

from flowmason.kernel.errors import FlowMasonError


class SamlError(FlowMasonError):
    code = "saml_rejected"
    http_status = 401
