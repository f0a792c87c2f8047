"""The identity service on DynamoDB (moto's server mode): what the Lambda API runs on."""
from __future__ import annotations

import pytest

from tests.support.fixtures import moto_endpoint  # noqa: F401 - fixture

from flowmason.plugins.auth.errors import InvalidCredentials, LockedOut, TokenReuseDetected
from flowmason.plugins.auth.service import AuthService
from flowmason.plugins.auth.settings import AuthSettings


@pytest.fixture
def dyn_service(moto_endpoint, mailer):
    from flowmason.kernel.storage import open_store
    from tests.support.dynamodb import dynamodb_url

    store = open_store(dynamodb_url(moto_endpoint))
    yield AuthService(AuthSettings(bcrypt_rounds=4), store, mailer=mailer)
    store.close()


def test_whole_flow_on_dynamodb(dyn_service):
    svc = dyn_service
    acct = svc.register("dyn@example.com", "a fine passphrase", "Dyn")
    pair = svc.login("dyn@example.com", "a fine passphrase")
    assert svc.identify(pair.access_token)["org_id"] == acct["org_id"]
    newer = svc.sessions.refresh(pair.refresh_token)
    with pytest.raises(TokenReuseDetected):
        svc.sessions.refresh(pair.refresh_token)
    with pytest.raises(InvalidCredentials):
        svc.identify(newer.access_token)
    key = svc.api_keys.create(acct["org_id"], acct["user_id"], "owner", name="ci", scopes=["run"])
    assert svc.identify(key["key"])["scopes"] == ["read", "run", "write"]
    assert [k["prefix"] for k in svc.api_keys.list(acct["org_id"])] == [key["prefix"]]
    token = svc.resets.request("dyn@example.com")
    svc.reset_password(token, "a brand new passphrase")
    with pytest.raises(InvalidCredentials):
        svc.reset_password(token, "another new passphrase")
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            svc.login("dyn@example.com", "wrong password!")
    with pytest.raises(LockedOut):
        svc.login("dyn@example.com", "a brand new passphrase")
    svc.keys.rotate()
    assert len(svc.keys.kids()) == 2
