"""Organizations and roles over HTTP; login lockout."""
from __future__ import annotations

import pytest

from tests.support.auth_api import register


def _as(api, account, org_id):
    tokens = api.post("/auth/orgs/switch", headers=account.headers, json={"org_id": org_id})
    assert tokens.status_code == 200, tokens.text
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


def test_roles_decide_member_management(api):
    owner = register(api, "boss@example.com", org_name="Acme")
    admin = register(api, "adm@example.com")
    viewer = register(api, "view@example.com")
    org = owner.org_id
    assert api.post(f"/auth/orgs/{org}/members", headers=owner.headers,
                    json={"email": "adm@example.com", "role": "admin"}).status_code == 201
    admin_h = _as(api, admin, org)
    assert api.post(f"/auth/orgs/{org}/members", headers=admin_h,
                    json={"email": "view@example.com", "role": "viewer"}).status_code == 201
    viewer_h = _as(api, viewer, org)
    # a viewer reads but cannot manage, save or run
    assert api.get(f"/auth/orgs/{org}/members", headers=viewer_h).status_code == 200
    assert api.put(f"/auth/orgs/{org}/members/{admin.user_id}", headers=viewer_h,
                   json={"role": "viewer"}).status_code == 403
    assert api.post("/runs", headers=viewer_h, json={"pipeline_id": "x"}).status_code == 403
    # an admin cannot make or touch owners
    assert api.put(f"/auth/orgs/{org}/members/{viewer.user_id}", headers=admin_h,
                   json={"role": "owner"}).status_code == 403
    assert api.delete(f"/auth/orgs/{org}/members/{owner.user_id}", headers=admin_h).status_code == 403
    # the last owner cannot leave or be demoted
    resp = api.put(f"/auth/orgs/{org}/members/{owner.user_id}", headers=owner.headers, json={"role": "admin"})
    assert resp.status_code == 409 and "owner" in resp.json()["error"]["message"]
    # removal takes effect on the next request
    assert api.delete(f"/auth/orgs/{org}/members/{viewer.user_id}", headers=admin_h).status_code == 200
    assert api.get(f"/auth/orgs/{org}/members", headers=viewer_h).status_code == 401
    members = api.get(f"/auth/orgs/{org}/members", headers=owner.headers).json()["items"]
    assert sorted(m["role"] for m in members) == ["admin", "owner"]


def test_switching_to_a_foreign_org_is_refused(api):
    a = register(api, "a1@example.com")
    b = register(api, "b1@example.com")
    resp = api.post("/auth/orgs/switch", headers=a.headers, json={"org_id": b.org_id})
    assert resp.status_code == 403
    assert api.post("/auth/login", json={"email": a.email, "password": a.password,
                                         "org_id": b.org_id}).status_code == 403


def test_create_org_and_list(api):
    a = register(api, "multi@example.com", org_name="First")
    created = api.post("/auth/orgs", headers=a.headers, json={"name": "Second"})
    assert created.status_code == 201 and created.json()["role"] == "owner"
    names = sorted(o["name"] for o in api.get("/auth/orgs", headers=a.headers).json()["items"])
    assert names == ["First", "Second"]


def test_lockout_after_repeated_failures(api):
    acct = register(api, "lock@example.com")
    for _ in range(5):
        assert api.post("/auth/login", json={"email": acct.email, "password": "wrong password!"}).status_code == 401
    locked = api.post("/auth/login", json={"email": acct.email, "password": acct.password})
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "locked_out"
    assert int(locked.headers["Retry-After"]) == 1


def test_backoff_doubles_per_client_and_never_touches_other_clients(service, monkeypatch):
    from flowmason.plugins.auth import throttle
    from flowmason.plugins.auth.errors import InvalidCredentials, LockedOut

    service.register("backoff@example.com", "a fine passphrase")
    now = [1_900_000_000.0]
    monkeypatch.setattr(throttle.time, "time", lambda: now[0])

    def attempt(password="not the password", client="10.0.0.1"):
        try:
            service.login("backoff@example.com", password, client=client)
            return "ok"
        except InvalidCredentials:
            return "wrong"
        except LockedOut as exc:
            return exc.retry_after

    assert [attempt() for _ in range(5)] == ["wrong"] * 5
    waits = []
    for _ in range(12):
        wait = attempt()
        waits.append(wait)
        now[0] += wait + 0.01
        assert attempt() == "wrong"  # after the wait, one try is checked again
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]  # doubling, capped at FM_LOGIN_LOCKOUT
    assert attempt(client="10.0.0.2") == "wrong"  # another client starts with its own free tries
    assert attempt("a fine passphrase", client="10.0.0.3") == "ok"  # the owner elsewhere is never locked out
    assert attempt("a fine passphrase") == 900  # the owner's success elsewhere does not lift this client's wait
    now[0] += 900.01
    assert attempt("a fine passphrase") == "ok"  # the right password after the wait, which clears it all
    assert [attempt() for _ in range(5)] == ["wrong"] * 5


def test_success_clears_the_failure_count(service):
    service.register("reset-count@example.com", "a fine passphrase")
    from flowmason.plugins.auth.errors import InvalidCredentials

    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            service.login("reset-count@example.com", "not the password")
    service.login("reset-count@example.com", "a fine passphrase")
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            service.login("reset-count@example.com", "not the password")
    service.login("reset-count@example.com", "a fine passphrase")


def test_register_errors_are_clear(api):
    register(api, "dup@example.com")
    dup = api.post("/auth/register", json={"email": "dup@example.com", "password": "a long enough passphrase"})
    new = api.post("/auth/register", json={"email": "new@example.com", "password": "a long enough passphrase"})
    assert (dup.status_code, dup.json()) == (new.status_code, new.json()) == (202, new.json())  # nothing told apart
    assert "already has one" in api.mailer.sent[-2].get_body(preferencelist=("plain",)).get_content()
    weak = api.post("/auth/register", json={"email": "weak@example.com", "password": "short"})
    assert weak.status_code == 422 and weak.json()["error"]["field"] == "password"
    bad = api.post("/auth/register", json={"email": "not-an-email", "password": "a long enough passphrase"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "email"


def test_auth_is_off_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("FM_AUTH", raising=False)
    from flowmason.kernel import plugins
    from flowmason.plugins.auth import configure

    configure(None)
    plugins.reset()
    try:
        reg = plugins.get_registry()
        assert "flowmason" not in reg.authenticators and "flowmason" not in reg.rate_limiters
    finally:
        plugins.reset()


def test_users_live_in_the_apis_own_store_by_default(tmp_path, monkeypatch):
    from starlette.testclient import TestClient

    from flowmason.kernel import plugins
    from flowmason.kernel.storage import open_store
    from flowmason.plugins.auth import AuthSettings, configure
    from flowmason.plugins.http_api.app import create_app
    from flowmason.plugins.http_api.services import Services

    monkeypatch.delenv("FM_AUTH_STORE", raising=False)
    url = f"sqlite:///{tmp_path / 'served.db'}"
    configure(AuthSettings(enabled=True, bcrypt_rounds=4, signup=True))
    plugins.reset()
    try:
        with TestClient(create_app(Services.local(url))) as client:
            acct = register(client, "served@example.com")
            assert client.get("/auth/me", headers=acct.headers).status_code == 200
        assert open_store(url).get("auth#email#served@example.com", "user") is not None
    finally:
        configure(None)
        plugins.reset()
