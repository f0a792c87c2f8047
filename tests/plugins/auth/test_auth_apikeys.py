"""API keys: shown once, stored hashed, visible prefix, scopes capped by role, expiry, revocation."""
from __future__ import annotations

import hashlib
import time

import pytest

from flowmason.plugins.auth.errors import Forbidden, InvalidCredentials, PolicyError
from tests.support.auth_api import register


def test_key_is_shown_once_and_stored_only_as_a_hash(api):
    owner = register(api, "keys@example.com")
    created = api.post("/auth/api-keys", headers=owner.headers, json={"name": "ci", "scopes": ["run"]}).json()
    key, prefix = created["key"], created["prefix"]
    assert key.startswith(f"fmk_{prefix}_") and len(key) > 50
    listed = api.get("/auth/api-keys", headers=owner.headers).json()["items"]
    assert [k["prefix"] for k in listed] == [prefix]
    assert "key" not in listed[0] and "hash" not in listed[0]
    item = api.service.store.get(f"auth#apikey#{prefix}", "key")
    assert item.data["hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in repr(item.data) and key not in repr(api.service.store.get(f"org#{owner.org_id}#apikeys", prefix))


def test_scopes_decide_routes(api):
    owner = register(api, "scopes@example.com")

    def key(scopes):
        return {"X-API-Key": api.post("/auth/api-keys", headers=owner.headers,
                                      json={"name": "k", "scopes": scopes}).json()["key"]}

    read, run, admin = key(["read"]), key(["run"]), key(["admin"])
    pipeline = {"name": "p", "stages": [{"id": "a", "component_type": "logger", "config": {"message": "hi"}}]}
    assert api.get("/runs", headers=read).status_code == 200
    assert api.post("/pipelines", headers=read, json=pipeline).status_code == 403
    assert api.post("/pipelines", headers=run, json=pipeline).status_code == 201
    assert api.get("/auth/orgs/%s/members" % owner.org_id, headers=read).status_code == 200
    assert api.post(f"/auth/orgs/{owner.org_id}/members", headers=run,
                    json={"email": "x@example.com"}).status_code == 403
    # a key cannot mint keys: that takes a logged-in user
    assert api.post("/auth/api-keys", headers=admin, json={"name": "k2", "scopes": ["read"]}).status_code == 403


def test_role_caps_key_scopes_now_and_later(service):
    owner = service.register("cap@example.com", "a fine passphrase")
    org, uid = owner["org_id"], owner["user_id"]
    viewer = service.register("viewer@example.com", "a fine passphrase")["user_id"]
    service.directory.set_member(org, "owner", viewer, "viewer")
    with pytest.raises(Forbidden, match="cannot grant"):
        service.api_keys.create(org, viewer, "viewer", name="k", scopes=["run"])
    member = service.register("member@example.com", "a fine passphrase")["user_id"]
    service.directory.set_member(org, "owner", member, "member")
    key = service.api_keys.create(org, member, "member", name="k", scopes=["run"])["key"]
    assert service.identify(key)["scopes"] == ["read", "run", "write"]
    service.directory.set_member(org, "owner", member, "viewer")  # demotion shrinks the key at once
    assert service.identify(key)["scopes"] == ["read"]
    service.directory.remove_member(org, "owner", member)  # removal kills it
    with pytest.raises(InvalidCredentials, match="no longer a member"):
        service.identify(key)
    assert uid


def test_expiry_and_revocation(service, monkeypatch):
    acct = service.register("exp@example.com", "a fine passphrase")
    made = service.api_keys.create(acct["org_id"], acct["user_id"], "owner", name="k", scopes=["read"],
                                   expires_in=3600)
    assert service.identify(made["key"])["kind"] == "api_key"
    import flowmason.plugins.auth.apikeys as apikeys

    real = time.time
    monkeypatch.setattr(apikeys.time, "time", lambda: real() + 3601)
    with pytest.raises(InvalidCredentials, match="expired"):
        service.identify(made["key"])
    monkeypatch.setattr(apikeys.time, "time", real)
    service.api_keys.revoke(acct["org_id"], made["prefix"], acct["user_id"], "owner")
    with pytest.raises(InvalidCredentials, match="revoked"):
        service.identify(made["key"])


@pytest.mark.parametrize("bad", ["fmk_abc", "fmk_abcdefgh_wrongsecret", "xyz_abcdefgh_secret", "fmk_abc/defg_s"])
def test_malformed_and_unknown_keys_are_refused(service, bad):
    with pytest.raises(InvalidCredentials):
        service.identify(bad)


def test_a_right_prefix_with_a_wrong_secret_is_refused(service):
    acct = service.register("guess@example.com", "a fine passphrase")
    made = service.api_keys.create(acct["org_id"], acct["user_id"], "owner", name="k", scopes=["read"])
    with pytest.raises(InvalidCredentials, match="unknown"):
        service.identify(f"fmk_{made['prefix']}_{'A' * 43}")


def test_bad_key_requests_name_the_field(service):
    acct = service.register("bad@example.com", "a fine passphrase")
    with pytest.raises(PolicyError) as err:
        service.api_keys.create(acct["org_id"], acct["user_id"], "owner", name="k", scopes=["root"])
    assert err.value.field == "scopes"
    with pytest.raises(PolicyError) as err:
        service.api_keys.create(acct["org_id"], acct["user_id"], "owner", name="k", scopes=["read"], expires_in=5)
    assert err.value.field == "expires_in"


def test_members_see_and_revoke_only_their_own_keys(api):
    owner = register(api, "own@example.com")
    other = register(api, "mem@example.com")
    api.service.directory.set_member(owner.org_id, "owner", other.user_id, "member")
    tokens = api.post("/auth/orgs/switch", headers=other.headers, json={"org_id": owner.org_id}).json()
    member_h = {"Authorization": f"Bearer {tokens['access_token']}"}
    owner_key = api.post("/auth/api-keys", headers=owner.headers, json={"name": "o", "scopes": ["read"]}).json()
    mine = api.post("/auth/api-keys", headers=member_h, json={"name": "m", "scopes": ["read"]}).json()
    assert [k["prefix"] for k in api.get("/auth/api-keys", headers=member_h).json()["items"]] == [mine["prefix"]]
    assert len(api.get("/auth/api-keys", headers=owner.headers).json()["items"]) == 2
    assert api.delete(f"/auth/api-keys/{owner_key['prefix']}", headers=member_h).status_code == 403
    assert api.delete(f"/auth/api-keys/{mine['prefix']}", headers=member_h).status_code == 200
    assert api.get("/runs", headers={"X-API-Key": mine["key"]}).status_code == 401
