"""JWT sessions: lifetimes, rotation, reuse detection, revocation, signing-key rotation, algorithms."""
from __future__ import annotations

import pytest

from flowmason.plugins.auth.errors import InvalidCredentials, TokenReuseDetected
from flowmason.plugins.auth.service import AuthService
from flowmason.plugins.auth.settings import AuthSettings


def _claims(token):
    import jwt

    return jwt.decode(token, options={"verify_signature": False}), jwt.get_unverified_header(token)


def test_lifetimes_claims_and_key_id(service):
    service.register("a@example.com", "a fine passphrase")
    pair = service.login("a@example.com", "a fine passphrase")
    access, header = _claims(pair.access_token)
    refresh, _ = _claims(pair.refresh_token)
    assert access["exp"] - access["iat"] == 3600 and access["typ"] == "access"
    assert refresh["exp"] - refresh["iat"] == 30 * 24 * 3600 and refresh["typ"] == "refresh"
    assert header["alg"] == "EdDSA" and header["kid"] in service.keys.kids()
    assert access["sid"] == refresh["sid"] and access["aud"] == "flowmason-api"


def test_refresh_rotates_and_reuse_revokes_the_family(service):
    service.register("b@example.com", "a fine passphrase")
    first = service.login("b@example.com", "a fine passphrase")
    second = service.sessions.refresh(first.refresh_token)
    third = service.sessions.refresh(second.refresh_token)
    assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
    service.identify(third.access_token)
    with pytest.raises(TokenReuseDetected):
        service.sessions.refresh(first.refresh_token)  # a stolen, already-rotated token comes back
    # the whole family is gone: the newest refresh token and the live access token too
    with pytest.raises(InvalidCredentials):
        service.sessions.refresh(third.refresh_token)
    with pytest.raises(InvalidCredentials):
        service.identify(third.access_token)


def test_other_sessions_survive_a_revocation(service):
    service.register("c@example.com", "a fine passphrase")
    laptop = service.login("c@example.com", "a fine passphrase")
    phone = service.login("c@example.com", "a fine passphrase")
    service.sessions.revoke(laptop.session_id)
    with pytest.raises(InvalidCredentials):
        service.identify(laptop.access_token)
    assert service.identify(phone.access_token)["subject"]
    assert service.sessions.revoke_user(service.directory.user_id_for("c@example.com")) == 2
    with pytest.raises(InvalidCredentials):
        service.identify(phone.access_token)


def test_refresh_token_is_not_an_access_token(service):
    service.register("d@example.com", "a fine passphrase")
    pair = service.login("d@example.com", "a fine passphrase")
    with pytest.raises(InvalidCredentials, match="not an access token"):
        service.identify(pair.refresh_token)
    with pytest.raises(InvalidCredentials, match="not an refresh token"):
        service.sessions.refresh(pair.access_token)


def test_key_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(service):
    service.register("e@example.com", "a fine passphrase")
    before = service.login("e@example.com", "a fine passphrase")
    old_kid = _claims(before.access_token)[1]["kid"]
    new_key = service.keys.rotate()
    after = service.sessions.refresh(before.refresh_token)
    assert _claims(after.access_token)[1]["kid"] == new_key.kid != old_kid
    assert service.identify(after.access_token)["subject"]
    other = service.login("e@example.com", "a fine passphrase")
    assert service.identify(other.access_token)
    # the old key still verifies until its tokens expire, and is stored to expire then
    item = service.store.get("auth#signing-keys", old_kid)
    assert item.data["retired_at"] and item.expires_at == pytest.approx(item.data["retired_at"] + 30 * 24 * 3600)


def test_another_instance_sees_a_rotated_key(store, mailer):
    a = AuthService(AuthSettings(bcrypt_rounds=4), store, mailer=mailer)
    b = AuthService(AuthSettings(bcrypt_rounds=4), store, mailer=mailer)
    a.register("f@example.com", "a fine passphrase")
    b.identify(a.login("f@example.com", "a fine passphrase").access_token)  # b loads the key set
    a.keys.rotate()
    import flowmason.plugins.auth.keys as keys

    b.keys._loaded_at -= keys._RELOAD_EVERY + 1  # as if the reload interval had passed
    assert b.identify(a.login("f@example.com", "a fine passphrase").access_token)


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256", "HS256"])
def test_every_configured_algorithm_round_trips_and_others_are_refused(store, mailer, alg):
    svc = AuthService(AuthSettings(algorithm=alg, bcrypt_rounds=4), store, mailer=mailer)
    svc.register(f"{alg.lower()}@example.com", "a fine passphrase")
    pair = svc.login(f"{alg.lower()}@example.com", "a fine passphrase")
    assert _claims(pair.access_token)[1]["alg"] == alg
    assert svc.identify(pair.access_token)["subject"]
    other = "EdDSA" if alg != "EdDSA" else "ES256"
    stranger = AuthService(AuthSettings(algorithm=other, bcrypt_rounds=4), store, mailer=mailer)
    with pytest.raises(InvalidCredentials, match="algorithm"):
        stranger.identify(pair.access_token)


def test_unknown_algorithm_setting_is_a_clear_error():
    from flowmason.kernel.errors import ConfigError

    with pytest.raises(ConfigError, match="unsupported JWT algorithm") as err:
        AuthSettings(algorithm="none")
    assert err.value.field == "FM_JWT_ALGORITHM"


def test_refresh_and_logout_over_http(api):
    from tests.support.auth_api import register

    acct = register(api, "http@example.com")
    resp = api.post("/auth/refresh", json={"refresh_token": acct.refresh})
    assert resp.status_code == 200 and resp.json()["token_type"] == "Bearer"
    new = resp.json()
    reuse = api.post("/auth/refresh", json={"refresh_token": acct.refresh})
    assert reuse.status_code == 401 and reuse.json()["error"]["code"] == "refresh_reuse"
    assert api.get("/auth/me", headers={"Authorization": f"Bearer {new['access_token']}"}).status_code == 401
    fresh = api.post("/auth/login", json={"email": "http@example.com", "password": acct.password}).json()
    h = {"Authorization": f"Bearer {fresh['access_token']}"}
    assert api.get("/auth/me", headers=h).json()["email"] == "http@example.com"
    assert api.post("/auth/logout", headers=h).status_code == 200
    assert api.get("/auth/me", headers=h).status_code == 401
    assert api.post("/auth/refresh", json={"refresh_token": fresh["refresh_token"]}).status_code == 401


def test_cli_rotates_keys_and_creates_users(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from flowmason.kernel import plugins
    from flowmason.kernel.cli import build_app
    from flowmason.kernel.storage import open_store

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FM_BCRYPT_ROUNDS", "4")
    plugins.reset()
    try:
        app = build_app()
        runner = CliRunner()
        made = runner.invoke(app, ["auth", "create-user", "cli@example.com", "--org", "Ops", "--store", url],
                             input="a fine passphrase\na fine passphrase\n")
        assert made.exit_code == 0, made.output
        assert "owns organization" in made.output
        weak = runner.invoke(app, ["auth", "create-user", "weak@example.com", "--store", url], input="short\nshort\n")
        assert weak.exit_code == 2 and "shorter than" in weak.output
        first = runner.invoke(app, ["auth", "rotate-keys", "--store", url])
        second = runner.invoke(app, ["auth", "rotate-keys", "--store", url])
        assert first.exit_code == 0 and second.exit_code == 0
        listing = runner.invoke(app, ["auth", "keys", "--store", url]).output.splitlines()
        assert len(listing) == 2 and sum("signing" in line for line in listing) == 1
        assert "a fine passphrase" not in made.output
        assert open_store(url).get("auth#email#cli@example.com", "user") is not None
    finally:
        plugins.reset()
