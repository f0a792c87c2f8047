"""Forged, tampered, expired, unsigned (alg: none) and algorithm-confusion tokens; refresh reuse."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from tests.support.auth_api import register


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def craft(header: dict, claims: dict, sign=None) -> str:
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return head + "." + (b64(sign(head.encode())) if sign else "")


def parts(token: str):
    h, c, s = token.split(".")
    return json.loads(unb64(h)), json.loads(unb64(c)), s


def refused(api, token: str) -> bool:
    return api.get("/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.fixture
def victim(api):
    return register(api, "victim@example.com")


def test_forged_signatures(api, victim, attacks):
    from cryptography.hazmat.primitives.asymmetric import ed25519

    header, claims, _ = parts(victim.access)
    attacker_key = ed25519.Ed25519PrivateKey.generate()
    forged = craft(header, claims, attacker_key.sign)  # same kid, attacker's key
    assert attacks.attempt("jwt", "signed with another key, same kid", refused(api, forged))
    # tamper with the payload (become someone else's org), keep the original signature
    other = register(api, "other@example.com")
    head, body, sig = victim.access.split(".")
    tampered_claims = dict(claims, org=other.org_id, sub=other.user_id)
    tampered = head + "." + b64(json.dumps(tampered_claims).encode()) + "." + sig
    assert attacks.attempt("jwt", "payload tampered, signature kept", refused(api, tampered))
    # flip one bit of the signature
    raw = bytearray(unb64(sig))
    raw[0] ^= 1
    assert attacks.attempt("jwt", "signature bit flipped", refused(api, f"{head}.{body}.{b64(bytes(raw))}"))
    # embedded attacker key (jwk header) is ignored: we only trust our key ring
    from jwt.algorithms import OKPAlgorithm

    jwk = json.loads(OKPAlgorithm.to_jwk(attacker_key.public_key()))
    with_jwk = craft(dict(header, jwk=jwk), claims, attacker_key.sign)
    assert attacks.attempt("jwt", "attacker key embedded as jwk header", refused(api, with_jwk))
    assert not refused(api, victim.access)  # the genuine token still works


def test_alg_none_and_confusion(api, victim, attacks):
    header, claims, _ = parts(victim.access)
    for alg in ("none", "None", "NONE", "nOnE"):
        token = craft(dict(header, alg=alg), claims)
        assert attacks.attempt("jwt", f"alg {alg}, no signature", refused(api, token))
    # HS256 signed with our public key (as PEM, DER and raw bytes) used as the HMAC secret
    from cryptography.hazmat.primitives import serialization

    key = api.service.keys.verifying_key(header["kid"]).verifying
    secrets_to_try = [
        key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
    ]
    for alg, digest in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384), ("HS512", hashlib.sha512)):
        for secret in secrets_to_try:
            token = craft(dict(header, alg=alg), claims, lambda m, s=secret, d=digest: hmac.new(s, m, d).digest())
            assert attacks.attempt("jwt", f"{alg} with the public key as secret", refused(api, token))
    # the other asymmetric algorithms, signed with an attacker key
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    es = craft(dict(header, alg="ES256"), claims, lambda m: ec_key.sign(m, ec.ECDSA(hashes.SHA256())))
    rs = craft(dict(header, alg="RS256"), claims, lambda m: rsa_key.sign(m, padding.PKCS1v15(), hashes.SHA256()))
    assert attacks.attempt("jwt", "ES256 with attacker key", refused(api, es))
    assert attacks.attempt("jwt", "RS256 with attacker key", refused(api, rs))


def test_hs256_deployment_refuses_forged_and_confused_tokens(tmp_path, attacks):
    from flowmason.plugins.auth.settings import AuthSettings
    from tests.support.auth_api import auth_api

    with auth_api(f"sqlite:///{tmp_path / 'hs.db'}", settings=AuthSettings(enabled=True, algorithm="HS256",
                                                                           bcrypt_rounds=4, signup=True)) as api:
        acct = register(api, "hs@example.com")
        header, claims, _ = parts(acct.access)
        for guess in (b"secret", b"", b"flowmason", header["kid"].encode()):
            token = craft(header, dict(claims, sub="usr_admin"), lambda m, g=guess: hmac.new(g, m, hashlib.sha256).digest())
            assert attacks.attempt("jwt", "HS256 with a guessed secret", refused(api, token))
        assert attacks.attempt("jwt", "alg none on HS256 deployment", refused(api, craft(dict(header, alg="none"), claims)))
        assert not refused(api, acct.access)


def test_expired_wrong_claims_and_key_ids(api, victim, attacks):
    import jwt

    header, claims, _ = parts(victim.access)
    ring = api.service.keys
    key = ring.signing_key()
    now = int(time.time())

    def signed(**changes):
        body = {k: v for k, v in dict(claims, **changes).items() if v is not None}
        return jwt.encode(body, key.signing, algorithm=key.alg, headers={"kid": key.kid})

    cases = {
        "expired an hour ago": signed(exp=now - 3600, iat=now - 7200, nbf=now - 7200),
        "not valid yet": signed(nbf=now + 3600),
        "wrong audience": signed(aud="someone-else"),
        "wrong issuer": signed(iss="https://evil.example"),
        "missing exp": signed(exp=None),
        "missing session id": signed(sid=None),
        "unknown session id": signed(sid="made-up-session"),
        "refresh type used as access": signed(typ="refresh"),
        "subject swapped inside a real session": signed(sub="usr_somebodyelse"),
    }
    for name, token in cases.items():
        assert attacks.attempt("jwt", name, refused(api, token))
    for name, hdr in {"unknown kid": dict(header, kid="deadbeef"), "no kid": {"alg": header["alg"], "typ": "JWT"},
                      "kid path traversal": dict(header, kid="../../etc/passwd")}.items():
        token = jwt.encode(claims, key.signing, algorithm=key.alg, headers={k: v for k, v in hdr.items() if k != "alg"})
        if "kid" not in hdr:
            h, c, s = token.split(".")
            token = b64(json.dumps(hdr).encode()) + "." + c + "." + s
        assert attacks.attempt("jwt", name, refused(api, token))
    for name, junk in {"empty": "", "garbage": "not.a.token", "two parts": "abc.def", "huge": "a." * 5000 + "b"}.items():
        assert attacks.attempt("jwt", f"malformed: {name}", refused(api, junk))


def test_refresh_reuse_revokes_the_family(api, victim, attacks):
    first = victim.refresh
    rotated = api.post("/auth/refresh", json={"refresh_token": first}).json()
    # the attacker replays the stolen (already rotated) refresh token
    reuse = api.post("/auth/refresh", json={"refresh_token": first})
    assert attacks.attempt("refresh", "rotated refresh token replayed", reuse.status_code == 401)
    # ... and the legitimate holder's newer tokens died with the family
    assert attacks.attempt("refresh", "newest refresh after reuse",
                           api.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]}).status_code == 401)
    assert attacks.attempt("refresh", "access token after reuse", refused(api, rotated["access_token"]))
    # an access token is not a refresh token
    fresh = api.post("/auth/login", json={"email": victim.email, "password": victim.password}).json()
    assert attacks.attempt("refresh", "access token used to refresh",
                           api.post("/auth/refresh", json={"refresh_token": fresh["access_token"]}).status_code == 401)
    # racing two refreshes with one token: at most one wins, and then the family is gone
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda _: api.post("/auth/refresh", json={"refresh_token": fresh["refresh_token"]}
                                                  ).status_code, range(8)))
    assert codes.count(200) <= 1
    for code in codes:
        if code != 200:
            attacks.attempt("refresh", "concurrent reuse of one refresh token", code == 401)
    assert attacks.attempt("refresh", "access token after logout", _logout_then(api, victim))


def _logout_then(api, victim) -> bool:
    tokens = api.post("/auth/login", json={"email": victim.email, "password": victim.password}).json()
    h = {"Authorization": f"Bearer {tokens['access_token']}"}
    api.post("/auth/logout", headers=h)
    return api.get("/runs", headers=h).status_code == 401 and \
        api.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
