"""SAML attacks: unsigned, wrong key, expired, replayed, misdirected and wrapped (XSW) assertions; logout abuse."""
from __future__ import annotations

import base64
import copy

import pytest
from lxml import etree

from tests.support.saml_idp import make_keypair, saml_api
from flowmason.plugins.saml.xmltools import NS, encode_post, q


@pytest.fixture
def saml(tmp_path):
    with saml_api(f"sqlite:///{tmp_path / 'saml.db'}") as harness:
        yield harness


def refused(harness, saml_response: str) -> bool:
    resp = harness.acs(saml_response)
    if __import__("os").environ.get("FM_SHOW_REFUSALS"):
        print("REFUSAL", resp.status_code, resp.text[:160])
    return resp.status_code in (400, 401, 413, 422) and "access_token" not in resp.text


def _parts(harness, rid, email="victim@corp.test", **kw):
    """A signed assertion and the kwargs to wrap it, for hand-built responses."""
    a = harness.idp.assertion(email=email, audience=harness.config.sp.entity_id,
                              recipient=harness.config.sp.acs_url("test"), in_response_to=rid, **kw)
    return a


def _wrap(harness, rid, assertions, **kw) -> str:
    r = harness.idp.response(assertions, destination=harness.config.sp.acs_url("test"), in_response_to=rid, **kw)
    return encode_post(etree.tostring(r))


def test_signature_attacks(saml, attacks):
    cat = "saml signature"
    assert attacks.attempt(cat, "unsigned assertion", refused(saml, saml.response_for(saml.start_login(),
                                                                                     sign_assertion=False)))
    key, cert = make_keypair("attacker")
    assert attacks.attempt(cat, "assertion signed with an attacker key", refused(
        saml, saml.response_for(saml.start_login(), key_pem=key, cert_pem=cert)))
    assert attacks.attempt(cat, "attacker-signed assertion inside a response the IdP signed", refused(
        saml, saml.response_for(saml.start_login(), key_pem=key, cert_pem=cert, sign_response=True)))
    # signed, then edited: the NameID becomes the victim
    rid = saml.start_login()
    signed = saml.idp._sign(_parts(saml, rid, email="mallory@corp.test"))
    signed.find("saml:Subject/saml:NameID", NS).text = "ceo@corp.test"
    assert attacks.attempt(cat, "NameID edited after signing", refused(saml, _wrap(saml, rid, [signed])))
    # a signed response around an unsigned assertion that was edited after signing
    rid = saml.start_login()
    r = saml.idp.response([_parts(saml, rid, email="mallory@corp.test")],
                          destination=saml.config.sp.acs_url("test"), in_response_to=rid, sign_response=True)
    r.find("saml:Assertion/saml:Subject/saml:NameID", NS).text = "ceo@corp.test"
    assert attacks.attempt(cat, "assertion edited inside a signed response", refused(saml, encode_post(etree.tostring(r))))
    # a signed response around an unsigned assertion: assertions must carry their own signature
    rid = saml.start_login()
    r = saml.idp.response([_parts(saml, rid)], destination=saml.config.sp.acs_url("test"), in_response_to=rid,
                          sign_response=True)
    assert attacks.attempt(cat, "only the response signed (assertion signature required)",
                           refused(saml, encode_post(etree.tostring(r))))
    # HMAC signature (a shared secret the attacker chooses)
    from signxml import XMLSigner
    from signxml.algorithms import CanonicalizationMethod

    rid = saml.start_login()
    a = _parts(saml, rid)
    hm = XMLSigner(signature_algorithm="hmac-sha256",
                   c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
    a = hm.sign(a, key=b"attacker-chosen-secret", reference_uri=a.get("ID"), id_attribute="ID")
    assert attacks.attempt(cat, "HMAC-signed assertion", refused(saml, _wrap(saml, rid, [a])))
    # signature stripped of its value
    rid = saml.start_login()
    a = saml.idp._sign(_parts(saml, rid))
    a.find("ds:Signature/ds:SignatureValue", NS).text = ""
    assert attacks.attempt(cat, "empty SignatureValue", refused(saml, _wrap(saml, rid, [a])))


def test_condition_attacks(saml, attacks):
    cat = "saml conditions"
    sp = saml.config.sp
    cases = {
        "expired assertion": dict(not_on_or_after=-600, confirm_not_on_or_after=-600),
        "subject confirmation expired": dict(confirm_not_on_or_after=-600),
        "assertion not valid yet": dict(not_before=600),
        "wrong audience": dict(audience="https://other-sp.example/saml"),
        "wrong recipient": dict(recipient="https://evil.example/acs"),
        "issuer is another IdP": dict(issuer="https://evil-idp.example"),
    }
    for name, kw in cases.items():
        assert attacks.attempt(cat, name, refused(saml, saml.response_for(saml.start_login(), **kw)))
    # the Response aimed at another service provider's ACS
    rid = saml.start_login()
    a = saml.idp._sign(_parts(saml, rid))
    r = saml.idp.response([a], destination="https://evil.example/acs", in_response_to=rid)
    assert attacks.attempt(cat, "wrong Destination", refused(saml, encode_post(etree.tostring(r))))
    # IdP reports failure
    rid = saml.start_login()
    r = saml.idp.response([saml.idp._sign(_parts(saml, rid))], destination=sp.acs_url("test"), in_response_to=rid,
                          status="urn:oasis:names:tc:SAML:2.0:status:Responder")
    assert attacks.attempt(cat, "status not Success", refused(saml, encode_post(etree.tostring(r))))
    assert attacks.attempt(cat, "InResponseTo we never sent", refused(saml, saml.response_for("_madeup123")))
    assert attacks.attempt(cat, "unsolicited response", refused(saml, saml.response_for(None)))
    # InResponseTo of the Response and of the SubjectConfirmation disagree
    rid, other = saml.start_login(), saml.start_login()
    a = saml.idp._sign(_parts(saml, other))
    assert attacks.attempt(cat, "InResponseTo mismatch", refused(saml, _wrap(saml, rid, [a])))


def test_replay(saml, attacks, tmp_path):
    good = saml.response_for(saml.start_login())
    assert saml.acs(good).status_code == 200
    assert attacks.attempt("saml replay", "same response twice", refused(saml, good))
    # where unsolicited responses are allowed, the assertion id alone must stop the replay
    with saml_api(f"sqlite:///{tmp_path / 'idp-init.db'}", allow_idp_initiated=True) as h:
        unsolicited = h.response_for(None)
        assert h.acs(unsolicited).status_code == 200
        for _ in range(3):
            assert attacks.attempt("saml replay", "unsolicited response replayed", refused(h, unsolicited))


def test_signature_wrapping(saml, attacks):
    cat = "saml xsw"
    sp = saml.config.sp

    def fresh():
        rid = saml.start_login()
        signed = saml.idp._sign(_parts(saml, rid, email="mallory@corp.test"))
        evil = _parts(saml, rid, email="ceo@corp.test")
        return rid, signed, evil

    # XSW1: evil assertion first, the signed original hidden in an Extensions element
    rid, signed, evil = fresh()
    r = saml.idp.response([evil], destination=sp.acs_url("test"), in_response_to=rid)
    ext = etree.SubElement(r, q("samlp", "Extensions"))
    ext.append(signed)
    assert attacks.attempt(cat, "signed assertion hidden in Extensions", refused(saml, encode_post(etree.tostring(r))))
    # XSW2: the signed assertion wrapped inside the evil one
    rid, signed, evil = fresh()
    evil.append(signed)
    assert attacks.attempt(cat, "signed assertion nested in the evil one", refused(saml, _wrap(saml, rid, [evil])))
    # XSW3: evil assertion with the same ID carrying the original's signature
    rid, signed, evil = fresh()
    evil.set("ID", signed.get("ID"))
    evil.find("saml:Issuer", NS).addnext(copy.deepcopy(signed.find("ds:Signature", NS)))
    assert attacks.attempt(cat, "original signature grafted onto an evil assertion",
                           refused(saml, _wrap(saml, rid, [evil])))
    # XSW4: the original inside the signature's Object of the evil assertion
    rid, signed, evil = fresh()
    sig = copy.deepcopy(signed.find("ds:Signature", NS))
    obj = etree.SubElement(sig, q("ds", "Object"))
    obj.append(signed)
    evil.find("saml:Issuer", NS).addnext(sig)
    assert attacks.attempt(cat, "original inside ds:Object of an evil assertion", refused(saml, _wrap(saml, rid, [evil])))
    # XSW5: both side by side
    rid, signed, evil = fresh()
    assert attacks.attempt(cat, "two assertions side by side", refused(saml, _wrap(saml, rid, [signed, evil])))
    assert attacks.attempt(cat, "two assertions, evil second", refused(saml, _wrap(saml, rid, [evil, signed])))
    # a signed response whose signature reference points at the assertion, not the response
    rid, signed, evil = fresh()
    r = saml.idp.response([signed], destination=sp.acs_url("test"), in_response_to=rid)
    r.find("saml:Issuer", NS).addnext(copy.deepcopy(signed.find("ds:Signature", NS)))
    assert attacks.attempt(cat, "response signature that covers only the assertion",
                           refused(saml, encode_post(etree.tostring(r))))


def test_comment_injection_does_not_truncate_the_name_id(saml, attacks):
    rid = saml.start_login()
    a = _parts(saml, rid, email="victim@corp.test.evil.test")
    for path in ("saml:Subject/saml:NameID", "saml:AttributeStatement/saml:Attribute/saml:AttributeValue"):
        el = a.find(path, NS)
        el.text = "victim@corp.test"
        comment = etree.Comment("x")
        comment.tail = ".evil.test"
        el.append(comment)
    a = saml.idp._sign(a)
    resp = saml.acs(_wrap(saml, rid, [a]))
    email = None
    if resp.status_code == 200:
        me = saml.client.get("/auth/me", headers={"Authorization": f"Bearer {resp.json()['access_token']}"}).json()
        email = me["email"]
    assert attacks.attempt("saml xsw", "comment truncates NameID to the victim", email != "victim@corp.test")


def test_xml_parser_attacks(saml, attacks):
    cat = "saml parser"
    xxe = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&x;</samlp:Response>')
    assert attacks.attempt(cat, "external entity (XXE)", refused(saml, base64.b64encode(xxe).decode()))
    bomb = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<r>&b;</r>')
    assert attacks.attempt(cat, "entity expansion (billion laughs)", refused(saml, base64.b64encode(bomb).decode()))
    assert attacks.attempt(cat, "not XML", refused(saml, base64.b64encode(b"hello").decode()))
    assert attacks.attempt(cat, "not base64", refused(saml, "%%%%"))
    assert attacks.attempt(cat, "huge message", refused(saml, base64.b64encode(b"<a>" + b"x" * 600_000 + b"</a>").decode()))


def test_logout_attacks(saml, attacks):
    cat = "saml logout"
    tokens = saml.login("target@corp.test").json()
    h = {"Authorization": f"Bearer {tokens['access_token']}"}
    slo = saml.config.sp.slo_url("test")

    def post(field, value):
        return saml.client.post("/auth/saml/test/slo", data={field: value}).status_code

    unsigned = saml.idp.logout_request(name_id="target@corp.test", destination=slo, signed=False)
    assert attacks.attempt(cat, "unsigned LogoutRequest", post("SAMLRequest", unsigned) == 401)
    key, cert = make_keypair("attacker")
    forged = saml.idp.logout_request(name_id="target@corp.test", destination=slo, key_pem=key, cert_pem=cert)
    assert attacks.attempt(cat, "LogoutRequest signed with an attacker key", post("SAMLRequest", forged) == 401)
    elsewhere = saml.idp.logout_request(name_id="target@corp.test", destination="https://evil.example/slo")
    assert attacks.attempt(cat, "LogoutRequest for another SP", post("SAMLRequest", elsewhere) == 401)
    assert saml.client.get("/auth/me", headers=h).status_code == 200  # none of those logged the user out
    good = saml.idp.logout_request(name_id="target@corp.test", destination=slo)
    assert post("SAMLRequest", good) == 200
    assert attacks.attempt(cat, "LogoutRequest replayed", post("SAMLRequest", good) == 401)
    unsolicited = saml.idp.logout_response(in_response_to="_never_sent", destination=slo)
    assert attacks.attempt(cat, "unsolicited LogoutResponse", post("SAMLResponse", unsolicited) == 401)
    unsigned_answer = saml.idp.logout_response(in_response_to="_never_sent", destination=slo, signed=False)
    assert attacks.attempt(cat, "unsigned LogoutResponse", post("SAMLResponse", unsigned_answer) == 401)
