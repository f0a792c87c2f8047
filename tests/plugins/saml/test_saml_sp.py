"""The SAML service provider end to end: login, metadata, single logout both ways."""
from __future__ import annotations

import pytest
from lxml import etree

from tests.support.saml_idp import make_keypair, saml_api
from flowmason.plugins.saml.xmltools import NS, decode_post, verify


def test_login_gives_tokens_and_membership(saml):
    resp = saml.login("alice@corp.test")
    assert resp.status_code == 200, resp.text
    tokens = resp.json()
    me = saml.client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert me["email"] == "alice@corp.test" and me["org_id"] == saml.org_id and me["roles"] == ["member"]
    # a SAML-made account has no password: password login is impossible
    assert saml.client.post("/auth/login", json={"email": "alice@corp.test", "password": "anything at all"}
                            ).status_code == 401


def test_authn_request_is_signed_by_the_sp_and_names_our_acs(saml):
    resp = saml.client.get("/auth/saml/test/login?format=json&relay_state=/dash")
    body = resp.json()
    assert body["url"] == saml.idp.sso_url and body["RelayState"] == "/dash"
    req = etree.fromstring(decode_post(body["SAMLRequest"]))
    assert req.get("AssertionConsumerServiceURL") == saml.config.sp.acs_url("test")
    assert req.get("Destination") == saml.idp.sso_url
    verify(req, [saml.config.sp.cert_pem])  # raises if the signature is wrong
    page = saml.client.get("/auth/saml/test/login")
    assert page.headers["content-type"].startswith("text/html") and 'name="SAMLRequest"' in page.text


def test_metadata_is_signed_and_lists_endpoints(saml):
    resp = saml.client.get("/auth/saml/test/metadata")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/samlmetadata+xml")
    root = etree.fromstring(resp.content)
    verify(root, [saml.config.sp.cert_pem])
    assert root.get("entityID") == saml.config.sp.entity_id
    acs = root.find(".//md:AssertionConsumerService", NS)
    slo = root.find(".//md:SingleLogoutService", NS)
    assert acs.get("Location") == saml.config.sp.acs_url("test")
    assert slo.get("Location") == saml.config.sp.slo_url("test")
    assert root.find(".//md:SPSSODescriptor", NS).get("WantAssertionsSigned") == "true"


def test_unknown_idp_is_404(saml):
    assert saml.client.get("/auth/saml/nope/metadata").status_code == 404


def test_sp_initiated_logout(saml):
    tokens = saml.login("bob@corp.test").json()
    h = {"Authorization": f"Bearer {tokens['access_token']}"}
    resp = saml.client.post("/auth/saml/test/logout?format=json", headers=h)
    assert resp.status_code == 200
    req = etree.fromstring(decode_post(resp.json()["SAMLRequest"]))
    verify(req, [saml.config.sp.cert_pem])
    assert req.find("saml:NameID", NS).text == "bob@corp.test"
    assert req.find("samlp:SessionIndex", NS).text == "sess-1"
    assert saml.client.get("/auth/me", headers=h).status_code == 401  # ended here at once
    answer = saml.idp.logout_response(in_response_to=req.get("ID"), destination=saml.config.sp.slo_url("test"))
    done = saml.client.post("/auth/saml/test/slo", data={"SAMLResponse": answer})
    assert done.status_code == 200 and done.json() == {"status": "logged out"}
    # the same answer again matches no pending request
    assert saml.client.post("/auth/saml/test/slo", data={"SAMLResponse": answer}).status_code == 401


def test_idp_initiated_logout_ends_the_named_sessions(saml):
    a = saml.login("carol@corp.test", session_index="s-a").json()
    b = saml.login("carol@corp.test", session_index="s-b").json()
    other = saml.login("dave@corp.test", session_index="s-a").json()
    msg = saml.idp.logout_request(name_id="carol@corp.test", session_index="s-a",
                                  destination=saml.config.sp.slo_url("test"))
    resp = saml.client.post("/auth/saml/test/slo?format=json", data={"SAMLRequest": msg})
    assert resp.status_code == 200
    answer = etree.fromstring(decode_post(resp.json()["SAMLResponse"]))
    verify(answer, [saml.config.sp.cert_pem])  # our LogoutResponse is signed
    assert answer.find("samlp:Status/samlp:StatusCode", NS).get("Value").endswith(":Success")

    def alive(tokens):
        return saml.client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
                               ).status_code == 200

    assert (alive(a), alive(b), alive(other)) == (False, True, True)


def test_logout_of_a_password_session_through_saml_is_refused(saml):
    tokens = saml.client.post("/auth/login", json={"email": "owner@corp.test", "password": "a fine passphrase"}).json()
    resp = saml.client.post("/auth/saml/test/logout", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert resp.status_code == 401


def test_config_errors_are_clear(tmp_path):
    from flowmason.kernel.errors import ConfigError
    from flowmason.plugins.saml.config import SamlConfig

    key, cert = make_keypair()
    with pytest.raises(ConfigError, match="sp.entity_id"):
        SamlConfig.from_dict({"sp": {"base_url": "http://x"}, "idps": {}})
    with pytest.raises(ConfigError, match="cannot read") as err:
        SamlConfig.from_dict({"sp": {"entity_id": "e", "base_url": "http://x", "key_file": str(tmp_path / "no.key"),
                                     "cert": cert}, "idps": {}})
    assert err.value.field == "sp.key_file"
    with pytest.raises(ConfigError, match="needs sso_url"):
        SamlConfig.from_dict({"sp": {"entity_id": "e", "base_url": "http://x", "key": key, "cert": cert},
                              "idps": {"x": {"entity_id": "i", "cert": cert, "org_id": "o"}}})


def test_idp_initiated_login_when_allowed(tmp_path):
    with saml_api(f"sqlite:///{tmp_path / 's.db'}", allow_idp_initiated=True) as harness:
        assert harness.acs(harness.response_for(None, "eve@corp.test")).status_code == 200


def test_signed_response_around_a_signed_assertion(saml):
    assert saml.login("frank@corp.test", sign_response=True).status_code == 200
