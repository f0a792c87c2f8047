"""Brute-force login, account enumeration, API key guessing, password-reset token abuse."""
from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

from tests.support.auth_api import register


def test_brute_force_login_is_locked_out(api, attacks):
    victim = register(api, "brute@example.com")
    guesses = [f"guess number {i:04d}" for i in range(60)]
    guesses.insert(30, victim.password)  # the right password arrives after the lockout
    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(lambda pw: api.post("/auth/login", json={"email": victim.email, "password": pw}
                                                  ).status_code, guesses))
    for pw, code in zip(guesses, codes):
        attacks.attempt("brute-force login", "password guess", code in (401, 429))
    assert 200 not in codes
    assert codes.count(401) <= 5 and codes.count(429) >= len(guesses) - 5  # at most 5 passwords were checked
    locked = api.post("/auth/login", json={"email": victim.email, "password": victim.password})
    assert attacks.attempt("brute-force login", "right password while locked out", locked.status_code == 429)
    assert int(locked.headers["Retry-After"]) > 0


def test_login_does_not_reveal_which_emails_exist(api, attacks):
    register(api, "known@example.com")
    known = api.post("/auth/login", json={"email": "known@example.com", "password": "wrong password!!"})
    unknown = api.post("/auth/login", json={"email": "unknown@example.com", "password": "wrong password!!"})
    same = (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    assert attacks.attempt("enumeration", "login error tells accounts apart", same)
    a = api.post("/auth/password-reset", json={"email": "known@example.com"})
    b = api.post("/auth/password-reset", json={"email": "unknown@example.com"})
    same = (a.status_code, a.json()) == (b.status_code, b.json())
    assert attacks.attempt("enumeration", "reset answer tells accounts apart", same)


def test_registration_does_not_reveal_which_emails_exist(api, attacks):
    register(api, "taken@example.com")
    body = {"password": "a long enough passphrase"}
    taken = api.post("/auth/register", json={"email": "taken@example.com", **body})
    free = api.post("/auth/register", json={"email": "free@example.com", **body})
    same = (taken.status_code, taken.json()) == (free.status_code, free.json())
    assert attacks.attempt("enumeration", "register answer tells accounts apart", same)
    # the owner of the taken address hears of it; nobody is told in the answer
    assert api.mailer.sent[-2]["To"] == "taken@example.com"


def test_a_default_server_takes_no_anonymous_accounts(tmp_path, attacks):
    from flowmason.plugins.auth.settings import AuthSettings
    from tests.support.auth_api import auth_api

    with auth_api(f"sqlite:///{tmp_path / 'closed.db'}", settings=AuthSettings(enabled=True, bcrypt_rounds=4)) as api:
        for email in ("anon@example.com", "anon+2@example.com"):
            code = api.post("/auth/register", json={"email": email, "password": "a long enough passphrase"}).status_code
            assert attacks.attempt("signup", "anonymous self-registration on a default server", code == 403)
        forged = api.post("/auth/register/confirm", json={"token": "A" * 43}).status_code
        assert attacks.attempt("signup", "forged registration token", forged == 401)
        forged = api.post("/auth/invites/accept", json={"token": "A" * 43, "password": "a long enough passphrase"})
        assert attacks.attempt("signup", "forged invitation token", forged.status_code == 401)


def test_api_key_guessing_and_reuse(api, attacks):
    owner = register(api, "keyowner@example.com")
    made = api.post("/auth/api-keys", headers=owner.headers, json={"name": "k", "scopes": ["read"]}).json()
    prefix = made["prefix"]
    guesses = [f"fmk_{prefix}_{'x' * 43}", f"fmk_{prefix}_", f"fmk_{prefix}", made["key"][:-1] + ("A" if made["key"][-1] != "A" else "B"),
               made["key"].upper(), made["key"] + "x", "fmk_aaaaaaaa_" + made["key"].split("_", 2)[2]]
    for guess in guesses:
        code = api.get("/runs", headers={"X-API-Key": guess}).status_code
        assert attacks.attempt("api key", "guessed or altered key", code == 401)
    api.delete(f"/auth/api-keys/{prefix}", headers=owner.headers)
    code = api.get("/runs", headers={"X-API-Key": made["key"]}).status_code
    assert attacks.attempt("api key", "revoked key", code == 401)
    read_key = api.post("/auth/api-keys", headers=owner.headers, json={"name": "r", "scopes": ["read"]}).json()["key"]
    code = api.post("/runs", headers={"X-API-Key": read_key}, json={"pipeline_id": "p"}).status_code
    assert attacks.attempt("api key", "read key starts a run", code == 403)
    code = api.post("/auth/api-keys", headers={"X-API-Key": read_key}, json={"name": "x", "scopes": ["admin"]}).status_code
    assert attacks.attempt("api key", "read key mints an admin key", code == 403)


def _token(mailer) -> str:
    text = mailer.sent[-1].get_body(preferencelist=("plain",)).get_content()
    return re.search(r"token=([A-Za-z0-9_\-%]+)", text).group(1)


def test_reset_token_reuse_expiry_and_guessing(api, attacks, monkeypatch):
    victim = register(api, "resetme@example.com")
    mailer = api.mailer

    def confirm(token, password="a brand new passphrase"):
        return api.post("/auth/password-reset/confirm", json={"token": token, "password": password}).status_code

    api.post("/auth/password-reset", json={"email": victim.email})
    first = _token(mailer)
    api.post("/auth/password-reset", json={"email": victim.email})
    second = _token(mailer)
    assert attacks.attempt("reset token", "older token after a new request", confirm(first) == 401)
    assert confirm(second) == 200
    assert attacks.attempt("reset token", "token used twice", confirm(second, "another new passphrase") == 401)
    for guess in ("A" * 43, second[:-1] + ("A" if second[-1] != "A" else "B"), "", "x" * 500):
        code = confirm(guess)
        assert attacks.attempt("reset token", "guessed token", code in (401, 422))
    # expiry: a token 24 hours and a second old
    api.post("/auth/password-reset", json={"email": victim.email})
    late = _token(mailer)
    import flowmason.plugins.auth.reset as reset

    real = time.time
    monkeypatch.setattr(reset.time, "time", lambda: real() + 24 * 3600 + 1)
    assert attacks.attempt("reset token", "expired token", confirm(late) == 401)
    monkeypatch.setattr(reset.time, "time", real)
    # racing one token: exactly one use wins
    api.post("/auth/password-reset", json={"email": victim.email})
    race = _token(mailer)
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda i: confirm(race, f"racing passphrase {i}"), range(8)))
    assert codes.count(200) == 1
    for code in codes:
        if code != 200:
            attacks.attempt("reset token", "concurrent reuse", code == 401)
