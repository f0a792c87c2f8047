"""The SAML 2.0 service provider: AuthnRequest, assertion consumer, metadata, single logout.

Bindings: HTTP-POST for every message, each carrying an enveloped XML
signature (signxml). What the assertion consumer checks, in order, and
refuses on the first failure:

1. the Response: well-formed, no DTD, ``Destination`` = our ACS URL,
   ``Issuer`` = the IdP, status Success;
2. signatures: a signed Response is verified and only its signed copy is
   used from then on; the single Assertion (exactly one in the whole
   document; encrypted ones are not supported) must carry its own valid
   signature (``want_assertions_signed``, the default) or sit inside a
   verified Response; from here on only the verified copy is read;
3. the Assertion: ``Issuer``; ``Conditions`` ``NotBefore``/``NotOnOrAfter``
   and ``AudienceRestriction`` (our entity id); a bearer
   ``SubjectConfirmation`` whose ``Recipient`` is our ACS URL, whose
   ``NotOnOrAfter`` has not passed and whose ``InResponseTo`` matches;
4. ``InResponseTo``: one of our outstanding AuthnRequests (consumed, so a
   request is answered once), or absent only when IdP-initiated login is
   allowed;
5. replay: the Assertion ID is recorded in the store with a conditional
   write until it expires; a second use is refused.

Outstanding request ids and seen assertion ids live in the store
(``saml#req#{id}``, ``saml#seen#{idp}#{id}``), so every API instance
shares them. SAML sessions are indexed by (IdP, NameID) so an IdP-initiated
LogoutRequest can end the FlowMason sessions it names.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from flowmason.kernel.errors import ConditionFailedError
from flowmason.kernel.storage import Store

from .config import IdpConfig, SamlConfig
from .errors import SamlError
from .xmltools import NS, POST_BINDING, SUCCESS, has_signature, instant, new_id, parse, parse_instant, q, sign, verify

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


@dataclass
class SamlLogin:
    idp: str
    name_id: str
    name_id_format: str | None
    session_index: str | None
    attributes: dict[str, list[str]] = field(default_factory=dict)
    relay_state: str | None = None

    def email(self, attribute: str | None) -> str | None:
        if attribute and self.attributes.get(attribute):
            return self.attributes[attribute][0]
        return self.name_id if "@" in self.name_id else None


@dataclass
class LogoutRequestIn:
    idp: str
    request_id: str
    name_id: str
    session_indexes: list[str]


def _text(element, path: str) -> str | None:
    found = element.find(path, NS)
    return found.text.strip() if found is not None and found.text else None


class ServiceProvider:
    def __init__(self, config: SamlConfig, store: Store) -> None:
        self.config = config
        self.sp = config.sp
        self.store = store

    # -- outgoing messages --
    def _remember_request(self, idp: str, request_id: str, kind: str) -> None:
        self.store.put(f"saml#req#{request_id}", "r", {"idp": idp, "kind": kind},
                       if_absent=True, expires_at=time.time() + self.sp.request_ttl)

    def _consume_request(self, idp: str, request_id: str | None, kind: str) -> bool:
        if not request_id:
            return False
        item = self.store.get(f"saml#req#{request_id}", "r")
        if item is None or item.data.get("idp") != idp or item.data.get("kind") != kind:
            return False
        try:
            self.store.delete(f"saml#req#{request_id}", "r", if_version=item.version)
        except ConditionFailedError:
            return False
        return True

    def _signed(self, element) -> bytes:
        from lxml import etree

        return etree.tostring(sign(element, self.sp.key_pem, self.sp.cert_pem), xml_declaration=False)

    def authn_request(self, idp_name: str) -> tuple[str, bytes]:
        """(request id, signed AuthnRequest XML) to POST to the IdP's SSO URL."""
        from lxml import etree

        idp = self.config.idp(idp_name)
        rid = new_id()
        root = etree.Element(q("samlp", "AuthnRequest"), nsmap={"samlp": NS["samlp"], "saml": NS["saml"]},
                             ID=rid, Version="2.0", IssueInstant=instant(), Destination=idp.sso_url,
                             ProtocolBinding=POST_BINDING, AssertionConsumerServiceURL=self.sp.acs_url(idp_name))
        etree.SubElement(root, q("saml", "Issuer")).text = self.sp.entity_id
        etree.SubElement(root, q("samlp", "NameIDPolicy"), AllowCreate="true")
        self._remember_request(idp_name, rid, "authn")
        return rid, self._signed(root)

    def logout_request(self, idp_name: str, name_id: str, session_index: str | None,
                       name_id_format: str | None = None) -> tuple[str, bytes]:
        from lxml import etree

        idp = self.config.idp(idp_name)
        if not idp.slo_url:
            raise SamlError(f"identity provider {idp_name!r} has no slo_url", hint="add it to the SAML config")
        rid = new_id()
        root = etree.Element(q("samlp", "LogoutRequest"), nsmap={"samlp": NS["samlp"], "saml": NS["saml"]},
                             ID=rid, Version="2.0", IssueInstant=instant(), Destination=idp.slo_url,
                             NotOnOrAfter=instant_in(self.sp.request_ttl))
        etree.SubElement(root, q("saml", "Issuer")).text = self.sp.entity_id
        nid = etree.SubElement(root, q("saml", "NameID"))
        nid.text = name_id
        if name_id_format:
            nid.set("Format", name_id_format)
        if session_index:
            etree.SubElement(root, q("samlp", "SessionIndex")).text = session_index
        self._remember_request(idp_name, rid, "logout")
        return rid, self._signed(root)

    def logout_response(self, idp_name: str, in_response_to: str) -> bytes:
        from lxml import etree

        idp = self.config.idp(idp_name)
        root = etree.Element(q("samlp", "LogoutResponse"), nsmap={"samlp": NS["samlp"], "saml": NS["saml"]},
                             ID=new_id(), Version="2.0", IssueInstant=instant(), Destination=idp.slo_url or "",
                             InResponseTo=in_response_to)
        etree.SubElement(root, q("saml", "Issuer")).text = self.sp.entity_id
        status = etree.SubElement(root, q("samlp", "Status"))
        etree.SubElement(status, q("samlp", "StatusCode"), Value=SUCCESS)
        return self._signed(root)

    def metadata(self, idp_name: str) -> bytes:
        """Signed SP metadata for one IdP's endpoints (entity id, certificate, ACS, SLO)."""
        from lxml import etree

        self.config.idp(idp_name)
        root = etree.Element(q("md", "EntityDescriptor"), nsmap={"md": NS["md"], "ds": NS["ds"]},
                             entityID=self.sp.entity_id, ID=new_id())
        sso = etree.SubElement(root, q("md", "SPSSODescriptor"), AuthnRequestsSigned="true",
                               WantAssertionsSigned="true" if self.sp.want_assertions_signed else "false",
                               protocolSupportEnumeration=NS["samlp"])
        for use in ("signing", "encryption"):
            kd = etree.SubElement(sso, q("md", "KeyDescriptor"), use=use)
            ki = etree.SubElement(kd, q("ds", "KeyInfo"))
            x509 = etree.SubElement(etree.SubElement(ki, q("ds", "X509Data")), q("ds", "X509Certificate"))
            x509.text = "".join(l for l in self.sp.cert_pem.strip().splitlines() if "-----" not in l)
        etree.SubElement(sso, q("md", "SingleLogoutService"), Binding=POST_BINDING, Location=self.sp.slo_url(idp_name))
        etree.SubElement(sso, q("md", "NameIDFormat")).text = EMAIL_FORMAT
        etree.SubElement(sso, q("md", "AssertionConsumerService"), Binding=POST_BINDING,
                         Location=self.sp.acs_url(idp_name), index="0", isDefault="true")
        signed = sign(root, self.sp.key_pem, self.sp.cert_pem)
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")

    # -- incoming messages --
    def _check_time(self, not_before: str | None, not_on_or_after: str | None, what: str, now: float) -> None:
        skew = self.sp.clock_skew
        if not_before and now + skew < parse_instant(not_before, f"{what} NotBefore"):
            raise SamlError(f"{what} is not valid yet (NotBefore)")
        if not_on_or_after and now - skew >= parse_instant(not_on_or_after, f"{what} NotOnOrAfter"):
            raise SamlError(f"{what} has expired (NotOnOrAfter)")

    def _check_issuer(self, element, idp: IdpConfig, what: str) -> None:
        issuer = _text(element, "saml:Issuer")
        if issuer is not None and issuer != idp.entity_id:
            raise SamlError(f"{what} Issuer is not the configured identity provider")

    def consume(self, idp_name: str, xml: bytes, relay_state: str | None = None, *,
                now: float | None = None) -> SamlLogin:
        idp = self.config.idp(idp_name)
        now = time.time() if now is None else now
        root = parse(xml)
        if root.tag != q("samlp", "Response"):
            raise SamlError("not a SAML Response")
        if root.get("Destination") != self.sp.acs_url(idp_name):
            raise SamlError("Response Destination is not this service's ACS URL")
        self._check_issuer(root, idp, "Response")
        code = root.find("samlp:Status/samlp:StatusCode", NS)
        if code is None or code.get("Value") != SUCCESS:
            raise SamlError("the identity provider did not report success")
        # exactly one assertion anywhere: a second one is how signature wrapping smuggles its payload
        if root.findall(".//saml:EncryptedAssertion", NS):
            raise SamlError("encrypted assertions are not supported", hint="turn off assertion encryption at the IdP")
        if len(root.findall(".//saml:Assertion", NS)) != 1:
            raise SamlError("a Response must carry exactly one Assertion")
        response_verified = False
        if has_signature(root):
            root = verify(root, idp.certs)
            response_verified = True
        assertion = root.find("saml:Assertion", NS)
        if assertion is None:
            raise SamlError("the Assertion is not a direct child of the Response")
        if has_signature(assertion):
            assertion = verify(assertion, idp.certs)
        elif self.sp.want_assertions_signed or not response_verified:
            raise SamlError("the Assertion is not signed", hint="sign assertions at the IdP")
        # from here on, only the verified assertion is read
        if assertion.get("Version") != "2.0":
            raise SamlError("not a SAML 2.0 Assertion")
        self._check_issuer(assertion, idp, "Assertion")
        if _text(assertion, "saml:Issuer") is None:
            raise SamlError("the Assertion has no Issuer")
        conditions = assertion.find("saml:Conditions", NS)
        if conditions is None:
            raise SamlError("the Assertion has no Conditions")
        self._check_time(conditions.get("NotBefore"), conditions.get("NotOnOrAfter"), "Assertion", now)
        audiences = [a.text.strip() for a in conditions.findall("saml:AudienceRestriction/saml:Audience", NS) if a.text]
        if self.sp.entity_id not in audiences:
            raise SamlError("the Assertion is meant for another audience")
        subject = assertion.find("saml:Subject", NS)
        name_id_el = subject.find("saml:NameID", NS) if subject is not None else None
        if name_id_el is None or not (name_id_el.text or "").strip():
            raise SamlError("the Assertion has no NameID")
        in_response_to = root.get("InResponseTo")
        confirmed = False
        for sc in subject.findall("saml:SubjectConfirmation", NS):
            data = sc.find("saml:SubjectConfirmationData", NS)
            if sc.get("Method") != BEARER or data is None:
                continue
            if data.get("Recipient") != self.sp.acs_url(idp_name):
                raise SamlError("SubjectConfirmation Recipient is not this service's ACS URL")
            if not data.get("NotOnOrAfter"):
                raise SamlError("SubjectConfirmation has no NotOnOrAfter")
            self._check_time(data.get("NotBefore"), data.get("NotOnOrAfter"), "SubjectConfirmation", now)
            if data.get("InResponseTo") != in_response_to:
                raise SamlError("SubjectConfirmation InResponseTo does not match the Response")
            confirmed = True
        if not confirmed:
            raise SamlError("the Assertion has no bearer SubjectConfirmation")
        if in_response_to:
            if not self._consume_request(idp_name, in_response_to, "authn"):
                raise SamlError("InResponseTo does not match a pending request of ours")
        elif not self.sp.allow_idp_initiated:
            raise SamlError("unsolicited responses are not accepted", hint="start the login at /auth/saml/{idp}/login")
        self._remember_assertion(idp_name, assertion, conditions, now)
        authn = assertion.find("saml:AuthnStatement", NS)
        if authn is not None and authn.get("SessionNotOnOrAfter"):
            self._check_time(None, authn.get("SessionNotOnOrAfter"), "AuthnStatement session", now)
        attributes: dict[str, list[str]] = {}
        for attr in assertion.findall("saml:AttributeStatement/saml:Attribute", NS):
            values = [v.text or "" for v in attr.findall("saml:AttributeValue", NS)]
            attributes[attr.get("Name", "")] = values
        return SamlLogin(idp_name, name_id_el.text.strip(), name_id_el.get("Format"),
                         authn.get("SessionIndex") if authn is not None else None, attributes, relay_state)

    def _remember_assertion(self, idp: str, assertion, conditions, now: float) -> None:
        aid = assertion.get("ID")
        if not aid:
            raise SamlError("the Assertion has no ID")
        until = parse_instant(conditions.get("NotOnOrAfter"), "Conditions NotOnOrAfter") \
            if conditions.get("NotOnOrAfter") else now + 24 * 3600
        try:
            self.store.put(f"saml#seen#{idp}#{hashlib.sha256(aid.encode()).hexdigest()}", "a", {"at": now},
                           if_absent=True, expires_at=max(until, now) + self.sp.clock_skew)
        except ConditionFailedError:
            raise SamlError("this Assertion was already used (replay)") from None

    def _verified_message(self, idp: IdpConfig, xml: bytes, tag: str, now: float):
        root = parse(xml)
        if root.tag != q("samlp", tag):
            raise SamlError(f"not a SAML {tag}")
        if not has_signature(root):
            raise SamlError(f"the {tag} is not signed")
        root = verify(root, idp.certs)
        if _text(root, "saml:Issuer") != idp.entity_id:
            raise SamlError(f"{tag} Issuer is not the configured identity provider")
        if root.get("Destination") not in (None, self.sp.slo_url(idp.name)):
            raise SamlError(f"{tag} Destination is not this service's SLO URL")
        skew = self.sp.clock_skew
        issued = parse_instant(root.get("IssueInstant"), f"{tag} IssueInstant")
        if abs(now - issued) > self.sp.request_ttl + skew:
            raise SamlError(f"{tag} IssueInstant is too far from now")
        return root

    def idp_logout_request(self, idp_name: str, xml: bytes, *, now: float | None = None) -> LogoutRequestIn:
        """An IdP-initiated LogoutRequest, verified; replays are refused like assertions."""
        idp = self.config.idp(idp_name)
        now = time.time() if now is None else now
        root = self._verified_message(idp, xml, "LogoutRequest", now)
        self._check_time(None, root.get("NotOnOrAfter"), "LogoutRequest", now)
        name_id = _text(root, "saml:NameID")
        if not name_id:
            raise SamlError("LogoutRequest has no NameID")
        rid = root.get("ID") or ""
        try:
            self.store.put(f"saml#seen#{idp_name}#{hashlib.sha256(rid.encode()).hexdigest()}", "l", {"at": now},
                           if_absent=True, expires_at=now + self.sp.request_ttl + self.sp.clock_skew)
        except ConditionFailedError:
            raise SamlError("this LogoutRequest was already used (replay)") from None
        indexes = [e.text.strip() for e in root.findall("samlp:SessionIndex", NS) if e.text]
        return LogoutRequestIn(idp_name, rid, name_id, indexes)

    def idp_logout_response(self, idp_name: str, xml: bytes, *, now: float | None = None) -> None:
        """The IdP's answer to our LogoutRequest: signed, for a request we sent, and successful."""
        idp = self.config.idp(idp_name)
        now = time.time() if now is None else now
        root = self._verified_message(idp, xml, "LogoutResponse", now)
        if not self._consume_request(idp_name, root.get("InResponseTo"), "logout"):
            raise SamlError("LogoutResponse InResponseTo does not match a pending request of ours")
        code = root.find("samlp:Status/samlp:StatusCode", NS)
        if code is None or code.get("Value") != SUCCESS:
            raise SamlError("the identity provider did not complete the logout")


def instant_in(seconds: int) -> str:
    from datetime import datetime, timedelta, timezone

    return instant(datetime.now(timezone.utc) + timedelta(seconds=seconds))


def session_index_pk(idp: str, name_id: str) -> str:
    """Where the FlowMason sessions opened by one SAML subject are listed."""
    return f"saml#sess#{idp}#{hashlib.sha256(name_id.encode()).hexdigest()}"

