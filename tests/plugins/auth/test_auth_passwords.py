"""bcrypt hashing, rehash on cost change, legacy SHA-256 upgrade, and the password policy."""
from __future__ import annotations

import hashlib

import pytest

from flowmason.plugins.auth.errors import PolicyError
from flowmason.plugins.auth.passwords import PasswordHasher, PasswordPolicy
from flowmason.plugins.auth.settings import AuthSettings


def test_default_cost_is_12_and_hashes_are_salted():
    hasher = PasswordHasher(AuthSettings().bcrypt_rounds)
    a, b = hasher.hash("same password here"), hasher.hash("same password here")
    assert a.startswith("$2b$12$") and a != b
    assert hasher.verify("same password here", a) == (True, None)
    assert hasher.verify("another password", a) == (False, None)


def test_rehash_when_cost_changes():
    old = PasswordHasher(4).hash("correct horse battery")
    ok, new = PasswordHasher(5).verify("correct horse battery", old)
    assert ok and PasswordHasher.cost(new) == 5
    assert PasswordHasher(5).verify("wrong horse battery", old) == (False, None)


@pytest.mark.parametrize("stored", [
    "sha256$pepper$" + hashlib.sha256(b"pepper" + b"legacy password 1").hexdigest(),
    hashlib.sha256(b"legacy password 1").hexdigest(),
    hashlib.sha256(b"legacy password 1").hexdigest().upper(),
])
def test_legacy_sha256_verifies_and_upgrades_to_bcrypt(stored):
    hasher = PasswordHasher(4)
    ok, new = hasher.verify("legacy password 1", stored)
    assert ok and new.startswith("$2b$04$")
    assert hasher.verify("legacy password 2", stored) == (False, None)


@pytest.mark.parametrize("stored", ["", "sha256$only-two", "md5$x$y", "$2b$12$broken", "nothex" * 10])
def test_malformed_stored_hashes_never_match(stored):
    assert PasswordHasher(4).verify("anything at all", stored) == (False, None)


def test_hasher_never_writes_sha256():
    h = PasswordHasher(4).hash("correct horse battery")
    assert h.startswith("$2b$") and "sha256" not in h


@pytest.mark.parametrize("password, rule", [
    ("short", "shorter than 10"),
    ("x" * 73, "longer than 72 bytes"),
    ("é" * 40, "longer than 72 bytes"),
    ("aaaaaaaaaaaaab", "distinct"),
    ("password123", "common"),
    ("alice-loves-cats", "email"),
])
def test_policy_names_the_rule(password, rule):
    with pytest.raises(PolicyError, match=rule) as err:
        PasswordPolicy(10).check(password, email="alice@example.com")
    assert err.value.field == "password"


def test_policy_accepts_a_passphrase():
    PasswordPolicy(10).check("correct horse battery staple", email="alice@example.com")


def test_login_upgrades_legacy_hash_in_the_store(service):
    account = service.register("legacy@example.com", "a fine passphrase")
    uid = account["user_id"]
    legacy = hashlib.sha256(b"imported password 9").hexdigest()
    service.directory.set_password_hash(uid, legacy)
    service.login("legacy@example.com", "imported password 9")
    stored = service.directory.profile(uid)["password_hash"]
    assert stored.startswith("$2b$04$")
    service.login("legacy@example.com", "imported password 9")  # the upgraded hash works


def test_login_rehashes_when_the_cost_setting_changes(store, mailer):
    from flowmason.plugins.auth.service import AuthService

    AuthService(AuthSettings(bcrypt_rounds=4), store, mailer=mailer).register("cost@example.com", "a fine passphrase")
    svc5 = AuthService(AuthSettings(bcrypt_rounds=5), store, mailer=mailer)
    svc5.login("cost@example.com", "a fine passphrase")
    uid = svc5.directory.user_id_for("cost@example.com")
    assert PasswordHasher.cost(svc5.directory.profile(uid)["password_hash"]) == 5
