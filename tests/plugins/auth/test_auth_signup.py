"""Self-registration (off by default, by email link when on) and invitations."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from flowmason.plugins.auth.settings import AuthSettings
from tests.support.auth_api import auth_api, mailed_token, register


def test_self_registration_is_off_by_default_and_says_who_to_ask(tmp_path):
    assert AuthSettings().signup is False and AuthSettings.from_env({}).signup is False
    assert AuthSettings.from_env({"FM_AUTH_SIGNUP": "1"}).signup is True
    with auth_api(f"sqlite:///{tmp_path / 'a.db'}", settings=AuthSettings(enabled=True, bcrypt_rounds=4)) as api:
        api.service.register("known@example.com", "a long enough passphrase")  # as `fm auth create-user` does
        answers = [api.post("/auth/register", json={"email": e, "password": "a long enough passphrase"})
                   for e in ("known@example.com", "new@example.com")]
        assert [a.status_code for a in answers] == [403, 403] and answers[0].json() == answers[1].json()
        error = answers[0].json()["error"]
        assert error["code"] == "signup_closed" and "invite" in error["hint"] and "FM_AUTH_SIGNUP=1" in error["hint"]
        assert api.mailer.sent == []
        assert api.post("/auth/login", json={"email": "known@example.com", "password": "a long enough passphrase"}
                        ).status_code == 200


def test_a_registration_link_works_once(api):
    api.post("/auth/register", json={"email": "once@example.com", "password": "a long enough passphrase"})
    token = mailed_token(api.mailer, "once@example.com")
    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = list(pool.map(lambda _: api.post("/auth/register/confirm", json={"token": token}).status_code, range(4)))
    assert sorted(codes) == [201, 401, 401, 401]
    assert api.post("/auth/login", json={"email": "once@example.com", "password": "a long enough passphrase"}
                    ).status_code == 200


def test_an_admin_invites_a_new_address_which_sets_its_password(api):
    admin = register(api, "admin@example.com", org_name="Acme")
    sent = api.post(f"/auth/orgs/{admin.org_id}/invites", headers=admin.headers,
                    json={"email": "newbie@example.com", "role": "member"})
    assert sent.status_code == 202
    token = mailed_token(api.mailer, "newbie@example.com")
    assert "Acme" in api.mailer.sent[-1]["Subject"]
    joined = api.post("/auth/invites/accept", json={"token": token, "password": "a fresh long passphrase"})
    assert joined.status_code == 201 and joined.json()["org_id"] == admin.org_id
    members = api.get(f"/auth/orgs/{admin.org_id}/members", headers=admin.headers).json()["items"]
    assert {m["email"]: m["role"] for m in members}["newbie@example.com"] == "member"
    again = api.post("/auth/invites/accept", json={"token": token, "password": "a fresh long passphrase"})
    assert again.status_code == 401


def test_an_existing_account_accepts_with_its_own_password_only(api):
    admin = register(api, "admin2@example.com")
    other = register(api, "other@example.com")

    def invite():
        api.post(f"/auth/orgs/{admin.org_id}/invites", headers=admin.headers, json={"email": other.email})
        return mailed_token(api.mailer, other.email)

    wrong = api.post("/auth/invites/accept", json={"token": invite(), "password": "somebody else's guess"})
    assert wrong.status_code == 401
    right = api.post("/auth/invites/accept", json={"token": invite(), "password": other.password})
    assert right.status_code == 201 and right.json()["user_id"] == other.user_id


@pytest.mark.parametrize("role", ["viewer", "member"])
def test_only_admins_invite(api, role):
    owner = register(api, f"owner-{role}@example.com")
    low = register(api, f"low-{role}@example.com")
    api.post(f"/auth/orgs/{owner.org_id}/members", headers=owner.headers, json={"email": low.email, "role": role})
    switched = api.post("/auth/orgs/switch", headers=low.headers, json={"org_id": owner.org_id}).json()
    code = api.post(f"/auth/orgs/{owner.org_id}/invites", headers={"Authorization": f"Bearer {switched['access_token']}"},
                    json={"email": "x@example.com"}).status_code
    assert code == 403
