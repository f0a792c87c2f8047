"""XML plumbing for SAML: safe parsing, namespaces, signing and verifying with signxml, times.

Parsing refuses DTDs and entities (XXE, billion laughs) and never touches
the network. Verification accepts only RSA/ECDSA with SHA-2 (no HMAC: an
attacker must not be able to pick a shared-secret algorithm), exactly one
reference, and a signature that is a direct child of the element being
verified (an enveloped signature of *that* element); the caller then works
only on the element signxml returns as signed, never on the document it
was handed — the defence against XML signature wrapping.
"""
from __future__ import annotations

import base64
import secrets
import zlib
from datetime import datetime, timezone
from typing import Any

from .errors import SamlError

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
POST_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
MAX_MESSAGE_BYTES = 256 * 1024


def q(prefix: str, tag: str) -> str:
    return f"{{{NS[prefix]}}}{tag}"


def parser():
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=True, remove_pis=True)


def parse(data: bytes):
    from lxml import etree

    if len(data) > MAX_MESSAGE_BYTES:
        raise SamlError("SAML message too large")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise SamlError("SAML message contains a DTD, which is never allowed")
    try:
        return etree.fromstring(data, parser())
    except etree.XMLSyntaxError:
        raise SamlError("SAML message is not well-formed XML") from None


def decode_post(value: str) -> bytes:
    """The XML of an HTTP-POST binding parameter (base64)."""
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=False)
    except (ValueError, UnicodeEncodeError):
        raise SamlError("SAML message is not base64") from None
    if raw[:1] != b"<":
        # some IdPs deflate even on POST; accept it, bounded
        try:
            raw = zlib.decompressobj(-15).decompress(raw, MAX_MESSAGE_BYTES + 1)
        except zlib.error:
            raise SamlError("SAML message is neither XML nor deflated XML") from None
    return raw


def encode_post(xml: bytes) -> str:
    return base64.b64encode(xml).decode("ascii")


def new_id() -> str:
    # an NCName: must not start with a digit
    return "_" + secrets.token_hex(20)


def instant(dt: datetime | None = None) -> str:
    return (dt or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(value: str | None, what: str) -> float:
    if not value:
        raise SamlError(f"missing {what}")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SamlError(f"bad time in {what}: {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def sign(element, key_pem: str, cert_pem: str):
    """Enveloped signature of ``element`` (by its ID), placed after its Issuer as the SAML schema wants."""
    from lxml import etree
    from signxml import XMLSigner
    from signxml.algorithms import CanonicalizationMethod

    placeholder = etree.Element(q("ds", "Signature"), Id="placeholder", nsmap={"ds": NS["ds"]})
    issuer = element.find(q("saml", "Issuer"))
    if issuer is not None:
        issuer.addnext(placeholder)
    else:
        element.insert(0, placeholder)
    signer = XMLSigner(c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
    return signer.sign(element, key=key_pem, cert=cert_pem, reference_uri=element.get("ID"), id_attribute="ID")


def _config():
    from signxml import SignatureConfiguration, SignatureMethod

    allowed = frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.RSA_SHA384, SignatureMethod.RSA_SHA512,
                         SignatureMethod.ECDSA_SHA256, SignatureMethod.ECDSA_SHA384, SignatureMethod.ECDSA_SHA512})
    return SignatureConfiguration(location="./", expect_references=1, signature_methods=allowed)


def has_signature(element) -> bool:
    return element.find(q("ds", "Signature")) is not None


def verify(element, certs: list[str]) -> Any:
    """The signed copy of ``element`` if its own enveloped signature verifies with one of ``certs``."""
    from lxml import etree
    from signxml import XMLVerifier

    data = etree.tostring(element)
    last: Exception | None = None
    for cert in certs:
        try:
            result = XMLVerifier().verify(data, x509_cert=cert, id_attribute="ID", expect_config=_config(),
                                          parser=parser())
        except Exception as exc:  # noqa: BLE001 - fail closed: malformed signatures raise TypeError and friends too
            last = exc
            continue
        signed = result.signed_xml
        # the reference must cover the element itself, not some part of it
        if signed is None or signed.tag != element.tag or signed.get("ID") != element.get("ID"):
            raise SamlError("signature does not cover the whole element")
        return signed
    raise SamlError("signature verification failed", hint="check the IdP certificate in the SAML config") from last
