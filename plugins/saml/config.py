"""SAML configuration: this service provider and the identity providers it trusts.

Read from the JSON file named by ``FM_SAML_CONFIG`` (or built in code)::

    {
      "sp": {
        "entity_id": "https://api.example.com/saml",
        "base_url": "https://api.example.com",          # ACS/SLO URLs are derived from it
        "key_file": "/etc/flowmason/saml-sp.key",       # PEM private key (signs requests, metadata)
        "cert_file": "/etc/flowmason/saml-sp.crt",      # PEM certificate published in metadata
        "clock_skew": 120,                              # seconds tolerated on time checks
        "want_assertions_signed": true,                 # the assertion itself must carry a signature
        "allow_idp_initiated": false                    # unsolicited responses (no InResponseTo)
      },
      "idps": {
        "okta": {
          "entity_id": "http://www.okta.com/exk...",
          "sso_url": "https://example.okta.com/app/.../sso/saml",
          "slo_url": "https://example.okta.com/app/.../slo/saml",
          "cert_file": "/etc/flowmason/okta.crt",       # or "cert": "-----BEGIN CERTIFICATE-----..."
          "org_id": "org_...",                          # the organization its users join
          "default_role": "member",
          "email_attribute": "email"                    # else the NameID is the email
        }
      }
    }

Each IdP has its own endpoints under ``/auth/saml/{idp}/...``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowmason.kernel.errors import ConfigError


def _pem(spec: dict, key: str, where: str) -> str:
    if spec.get(key.replace("_file", "")):
        return spec[key.replace("_file", "")]
    path = spec.get(key)
    if not path:
        raise ConfigError(f"{where} needs '{key}' (or the PEM inline)", field=f"{where}.{key}",
                          hint="point it to a PEM file")
    try:
        return Path(path).expanduser().read_text("ascii")
    except OSError as exc:
        raise ConfigError(f"cannot read {where}.{key} {path!r}: {exc.strerror}", field=f"{where}.{key}",
                          hint="check the path and permissions") from None


@dataclass
class IdpConfig:
    name: str
    entity_id: str
    sso_url: str
    certs: list[str]
    org_id: str
    slo_url: str | None = None
    default_role: str = "member"
    email_attribute: str | None = "email"


@dataclass
class SpConfig:
    entity_id: str
    base_url: str
    key_pem: str
    cert_pem: str
    clock_skew: int = 120
    want_assertions_signed: bool = True
    allow_idp_initiated: bool = False
    request_ttl: int = 600  # how long an AuthnRequest/LogoutRequest may wait for its answer

    def acs_url(self, idp: str) -> str:
        return f"{self.base_url}/auth/saml/{idp}/acs"

    def slo_url(self, idp: str) -> str:
        return f"{self.base_url}/auth/saml/{idp}/slo"


@dataclass
class SamlConfig:
    sp: SpConfig
    idps: dict[str, IdpConfig] = field(default_factory=dict)

    def idp(self, name: str) -> IdpConfig:
        try:
            return self.idps[name]
        except KeyError:
            from .errors import SamlError

            err = SamlError(f"unknown identity provider {name!r}")
            err.http_status = 404
            raise err from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SamlConfig":
        sp = data.get("sp") or {}
        for key in ("entity_id", "base_url"):
            if not sp.get(key):
                raise ConfigError(f"SAML config needs sp.{key}", field=f"sp.{key}")
        spc = SpConfig(
            entity_id=sp["entity_id"], base_url=sp["base_url"].rstrip("/"),
            key_pem=_pem(sp, "key_file", "sp"), cert_pem=_pem(sp, "cert_file", "sp"),
            clock_skew=int(sp.get("clock_skew", 120)),
            want_assertions_signed=bool(sp.get("want_assertions_signed", True)),
            allow_idp_initiated=bool(sp.get("allow_idp_initiated", False)),
        )
        idps = {}
        for name, spec in (data.get("idps") or {}).items():
            for key in ("entity_id", "sso_url", "org_id"):
                if not spec.get(key):
                    raise ConfigError(f"SAML IdP {name!r} needs {key}", field=f"idps.{name}.{key}")
            cert = _pem(spec, "cert_file", f"idps.{name}")
            idps[name] = IdpConfig(name=name, entity_id=spec["entity_id"], sso_url=spec["sso_url"],
                                   certs=[cert] + list(spec.get("extra_certs", [])), org_id=spec["org_id"],
                                   slo_url=spec.get("slo_url"), default_role=spec.get("default_role", "member"),
                                   email_attribute=spec.get("email_attribute", "email"))
        if not idps:
            raise ConfigError("SAML config lists no identity provider", field="idps")
        return cls(spc, idps)

    @classmethod
    def from_env(cls) -> "SamlConfig | None":
        from flowmason.kernel.settings import get_settings

        path = get_settings().saml_config
        if not path:
            return None
        try:
            data = json.loads(Path(path).read_text("utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read FM_SAML_CONFIG {path!r}: {exc.strerror}", field="FM_SAML_CONFIG") from None
        except ValueError as exc:
            raise ConfigError(f"FM_SAML_CONFIG {path!r} is not JSON: {exc}", field="FM_SAML_CONFIG") from None
        return cls.from_dict(data)
