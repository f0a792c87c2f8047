"""X-Forwarded-For spoofing and targeted lockout, against a real uvicorn configured as ``fm serve`` is.

Clients connect from different loopback addresses (127.0.0.1, 127.0.0.2),
which is what two machines look like to the server.
"""
from __future__ import annotations

import pytest

from flowmason.plugins.auth.settings import AuthSettings
from tests.support.auth_api import auth_api, register
from tests.support.uvicorn_server import client, serving

LIMIT = 5


@pytest.fixture
def limited(tmp_path):
    """An FM_AUTH API limited to LIMIT requests per caller per 10 minutes."""
    with auth_api(f"sqlite:///{tmp_path / 'api.db'}", ratelimit={"FM_RATELIMIT": f"{LIMIT}/600"}) as api:
        yield api


def test_fresh_forwarded_headers_do_not_buy_fresh_buckets(limited, attacks):
    with serving(limited.app, lifespan="off") as base, client(base) as c:
        codes = [c.get("/runs", headers={"X-Forwarded-For": f"10.9.{i // 250}.{i % 250}",
                                         "Forwarded": f"for=10.8.0.{i % 250}", "X-Real-IP": f"10.7.0.{i % 250}"}
                       ).status_code for i in range(LIMIT + 20)]
    assert codes[:LIMIT] == [401] * LIMIT
    for code in codes[LIMIT:]:
        assert attacks.attempt("forwarded headers", "spoofed X-Forwarded-For from an untrusted peer", code == 429)


def test_forwarded_headers_count_only_from_a_configured_proxy(limited, attacks):
    env = {"FM_TRUSTED_PROXIES": "127.0.0.1"}
    with serving(limited.app, env, lifespan="off") as base, client(base) as proxy, \
            client(base, "127.0.0.2") as stranger:
        # through the proxy, each real client has its own bucket
        via_proxy = [proxy.get("/runs", headers={"X-Forwarded-For": f"10.9.0.{i}"}).status_code
                     for i in range(LIMIT + 5)]
        assert via_proxy == [401] * (LIMIT + 5)
        # a peer that is not the proxy sends the header and is still keyed on its own address
        direct = [stranger.get("/runs", headers={"X-Forwarded-For": f"10.9.1.{i}"}).status_code
                  for i in range(LIMIT + 5)]
    assert direct[:LIMIT] == [401] * LIMIT
    for code in direct[LIMIT:]:
        assert attacks.attempt("forwarded headers", "spoofed X-Forwarded-For beside a trusted proxy", code == 429)


def test_wrong_passwords_from_one_client_never_lock_the_owner_out(tmp_path, attacks):
    settings = AuthSettings(enabled=True, bcrypt_rounds=4, signup=True)
    with auth_api(f"sqlite:///{tmp_path / 'api.db'}", settings=settings) as api:
        victim = register(api, "victim@example.com")
        with serving(api.app, lifespan="off") as base, client(base, "127.0.0.2") as attacker, \
                client(base) as owner:
            codes = [attacker.post("/auth/login", json={"email": victim.email, "password": f"guess {i:04d} xx"}
                                   ).status_code for i in range(30)]
            assert codes.count(401) <= settings.login_max_failures and codes.count(429) >= 25
            right = attacker.post("/auth/login", json={"email": victim.email, "password": victim.password})
            assert attacks.attempt("brute-force login", "right password from the guessing client", right.status_code == 429)
            mine = owner.post("/auth/login", json={"email": victim.email, "password": victim.password})
            assert attacks.attempt("lockout", "owner locked out by another client's failures", mine.status_code == 200)
            # the unknown-email path throttles the same way, so the answer tells nothing about the account
            ghost = [attacker.post("/auth/login", json={"email": "ghost@example.com", "password": f"guess {i:04d} xx"}
                                   ).status_code for i in range(30)]
            assert attacks.attempt("enumeration", "throttle tells known and unknown emails apart",
                                   sorted(ghost) == sorted(codes))
