"""An identity provider for tests and benchmarks: real RSA keys, real signatures (signxml).

``make_keypair(cn)`` returns (private key PEM, self-signed certificate
PEM). ``TestIdp`` builds the messages an IdP sends — Responses with
assertions, LogoutRequests, LogoutResponses — with knobs for every field
the service provider checks, signed with its key (or not, or with another
key), so the security suite can forge exactly the message it means to.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from flowmason.plugins.saml.xmltools import NS, SUCCESS, encode_post, instant, new_id, q, sign

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"


def make_keypair(common_name: str = "test") -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def _at(offset: float) -> str:
    return instant(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset))


@dataclass
class TestIdp:
    entity_id: str = "https://idp.test/metadata"
    sso_url: str = "https://idp.test/sso"
    slo_url: str = "https://idp.test/slo"
    key_pem: str = ""
    cert_pem: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    __test__ = False  # not a pytest class

    def __post_init__(self) -> None:
        if not self.key_pem:
            self.key_pem, self.cert_pem = make_keypair("test-idp")

    def config(self, org_id: str, **overrides: Any) -> dict[str, Any]:
        return {"entity_id": self.entity_id, "sso_url": self.sso_url, "slo_url": self.slo_url,
                "cert": self.cert_pem, "org_id": org_id, **overrides}

    def _sign(self, element, key_pem: str | None = None, cert_pem: str | None = None):
        return sign(element, key_pem or self.key_pem, cert_pem or self.cert_pem)

    def assertion(self, *, email: str, audience: str, recipient: str, in_response_to: str | None,
                  issuer: str | None = None, not_before: float = -60, not_on_or_after: float = 300,
                  confirm_not_on_or_after: float = 300, session_index: str = "sess-1", assertion_id: str | None = None):
        from lxml import etree

        a = etree.Element(q("saml", "Assertion"), nsmap={"saml": NS["saml"]}, ID=assertion_id or new_id(),
                          Version="2.0", IssueInstant=instant())
        etree.SubElement(a, q("saml", "Issuer")).text = issuer or self.entity_id
        subject = etree.SubElement(a, q("saml", "Subject"))
        etree.SubElement(subject, q("saml", "NameID"),
                         Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress").text = email
        sc = etree.SubElement(subject, q("saml", "SubjectConfirmation"), Method=BEARER)
        data = etree.SubElement(sc, q("saml", "SubjectConfirmationData"), Recipient=recipient,
                                NotOnOrAfter=_at(confirm_not_on_or_after))
        if in_response_to:
            data.set("InResponseTo", in_response_to)
        cond = etree.SubElement(a, q("saml", "Conditions"), NotBefore=_at(not_before),
                                NotOnOrAfter=_at(not_on_or_after))
        etree.SubElement(etree.SubElement(cond, q("saml", "AudienceRestriction")), q("saml", "Audience")).text = audience
        etree.SubElement(a, q("saml", "AuthnStatement"), AuthnInstant=instant(), SessionIndex=session_index)
        attrs = etree.SubElement(a, q("saml", "AttributeStatement"))
        attr = etree.SubElement(attrs, q("saml", "Attribute"), Name="email")
        etree.SubElement(attr, q("saml", "AttributeValue")).text = email
        return a

    def response(self, assertions: list, *, destination: str, in_response_to: str | None,
                 sign_response: bool = False, status: str = SUCCESS):
        from lxml import etree

        r = etree.Element(q("samlp", "Response"), nsmap={"samlp": NS["samlp"], "saml": NS["saml"]}, ID=new_id(),
                          Version="2.0", IssueInstant=instant(), Destination=destination)
        if in_response_to:
            r.set("InResponseTo", in_response_to)
        etree.SubElement(r, q("saml", "Issuer")).text = self.entity_id
        st = etree.SubElement(r, q("samlp", "Status"))
        etree.SubElement(st, q("samlp", "StatusCode"), Value=status)
        for a in assertions:
            r.append(a)
        return self._sign(r) if sign_response else r

    def login_response(self, *, email: str, sp_entity_id: str, acs_url: str, in_response_to: str | None,
                       sign_assertion: bool = True, sign_response: bool = False, key_pem: str | None = None,
                       cert_pem: str | None = None, **assertion_kw: Any) -> str:
        """A complete, encoded SAMLResponse (the usual happy path, every knob overridable)."""
        from lxml import etree

        a = self.assertion(email=email, audience=assertion_kw.pop("audience", sp_entity_id),
                           recipient=assertion_kw.pop("recipient", acs_url), in_response_to=in_response_to,
                           **assertion_kw)
        if sign_assertion:
            a = self._sign(a, key_pem, cert_pem)
        r = self.response([a], destination=acs_url, in_response_to=in_response_to, sign_response=sign_response)
        return encode_post(etree.tostring(r))

    def logout_request(self, *, name_id: str, destination: str, session_index: str | None = None,
                       signed: bool = True, key_pem: str | None = None, cert_pem: str | None = None) -> str:
        from lxml import etree

        r = etree.Element(q("samlp", "LogoutRequest"), nsmap={"samlp": NS["samlp"], "saml": NS["saml"]},
                          ID=new_id(), Version="2.0", IssueInstant=instant(), Destination=destination,
                          NotOnOrAfter=_at(300))
        etree.SubElement(r, q("saml", "Issuer")).text = self.entity_id
        etree.SubElement(r, q("saml", "NameID")).text = name_id
        if session_index:
            etree.SubElement(r, q("samlp", "SessionIndex")).text = session_index
        if signed:
            r = self._sign(r, key_pem, cert_pem)
        return encode_post(etree.tostring(r))

    def logout_response(self, *, in_response_to: str, destination: str, signed: bool = True,
                        status: str = SUCCESS) -> str:
        from lxml import etree

        r = etree.Element(q("samlp", "LogoutResponse"), nsmap={"samlp": NS["samlp"], "saml": NS["saml"]},
                          ID=new_id(), Version="2.0", IssueInstant=instant(), Destination=destination,
                          InResponseTo=in_response_to)
        etree.SubElement(r, q("saml", "Issuer")).text = self.entity_id
        st = etree.SubElement(r, q("samlp", "Status"))
        etree.SubElement(st, q("samlp", "StatusCode"), Value=status)
        if signed:
            r = self._sign(r)
        return encode_post(etree.tostring(r))


def sp_config(idp: TestIdp, org_id: str, *, base_url: str = "http://testserver", **sp_overrides: Any):
    """A SamlConfig trusting ``idp`` with a freshly generated SP key pair."""
    from flowmason.plugins.saml.config import SamlConfig

    key, cert = make_keypair("test-sp")
    return SamlConfig.from_dict({
        "sp": {"entity_id": f"{base_url}/saml", "base_url": base_url, "key": key, "cert": cert, **sp_overrides},
        "idps": {"test": idp.config(org_id)},
    })


@dataclass
class SamlHarness:
    """What ``saml_api`` yields: the API client, the IdP, the SP config and the IdP's organization."""

    client: Any
    idp: TestIdp
    config: Any
    org_id: str

    def start_login(self) -> str:
        """Begin a login at the SP; returns the AuthnRequest ID the IdP must answer."""
        from lxml import etree

        from flowmason.plugins.saml.xmltools import decode_post

        resp = self.client.get("/auth/saml/test/login?format=json")
        assert resp.status_code == 200, resp.text
        return etree.fromstring(decode_post(resp.json()["SAMLRequest"])).get("ID")

    def response_for(self, request_id: str | None, email: str = "sso@corp.test", **kw: Any) -> str:
        return self.idp.login_response(email=email, sp_entity_id=self.config.sp.entity_id,
                                       acs_url=self.config.sp.acs_url("test"), in_response_to=request_id, **kw)

    def acs(self, saml_response: str):
        return self.client.post("/auth/saml/test/acs", data={"SAMLResponse": saml_response})

    def login(self, email: str = "sso@corp.test", **kw: Any):
        return self.acs(self.response_for(self.start_login(), email, **kw))


def saml_api(store_url: str, **sp_overrides: Any):
    """The HTTP API with auth and SAML on, trusting a fresh ``TestIdp``; yields a ``SamlHarness``."""
    import contextlib

    @contextlib.contextmanager
    def run():
        from flowmason.kernel.storage import open_store
        from flowmason.plugins.auth.service import AuthService
        from flowmason.plugins.auth.settings import AuthSettings
        from flowmason.plugins.saml.service import configure

        from .auth_api import auth_api

        store = open_store(store_url)
        owner = AuthService(AuthSettings(bcrypt_rounds=4), store).register("owner@corp.test", "a fine passphrase",
                                                                            "Corp")
        idp = TestIdp()
        config = sp_config(idp, owner["org_id"], **sp_overrides)
        configure(config)
        try:
            with auth_api(store_url) as client:
                yield SamlHarness(client, idp, config, owner["org_id"])
        finally:
            configure(None)
            store.close()

    return run()
