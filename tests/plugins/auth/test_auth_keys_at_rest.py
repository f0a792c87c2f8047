"""Signing keys are sealed at rest (a local key file, or KMS on moto's server) and clear ones are migrated."""
from __future__ import annotations

import logging
import os
import stat

import pytest

from flowmason.plugins.auth.errors import InvalidCredentials
from flowmason.plugins.auth.keys import KEYS_PK, KeyRing, _generate
from flowmason.plugins.auth.sealing import FileSealer, Sealers, SealError
from flowmason.plugins.auth.service import AuthService
from flowmason.plugins.auth.settings import AuthSettings
from tests.support.fixtures import moto_endpoint  # noqa: F401 - fixture


def _raw(tmp_path) -> bytes:
    return (tmp_path / "auth.db").read_bytes()


def _service(store, mailer, **settings):
    return AuthService(AuthSettings(enabled=True, bcrypt_rounds=4, **settings), store, mailer=mailer)


def test_keys_are_sealed_with_a_private_key_file_by_default(store, mailer, tmp_path):
    svc = _service(store, mailer)
    svc.register("sealed@example.com", "a fine passphrase")
    pair = svc.login("sealed@example.com", "a fine passphrase")
    (item,) = store.query(KEYS_PK).items
    assert "material" not in item.data and item.data["sealed"]["by"] == "file"
    assert b"PRIVATE KEY" not in _raw(tmp_path)
    key_file = tmp_path / "fmhome" / "signing-keys.key"  # the data folder (FM_HOME in the test suite)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    # another instance with the same key file verifies the token
    assert _service(store, mailer).identify(pair.access_token)["subject"]


def test_a_store_without_its_key_file_forges_nothing(store, mailer, tmp_path, caplog):
    svc = _service(store, mailer, key_file=str(tmp_path / "one.key"))
    svc.register("thief@example.com", "a fine passphrase")
    pair = svc.login("thief@example.com", "a fine passphrase")
    other = _service(store, mailer, key_file=str(tmp_path / "other.key"))
    with caplog.at_level(logging.WARNING, "flowmason.auth"):
        with pytest.raises(InvalidCredentials):
            other.identify(pair.access_token)
    assert "sealed with another key file" in caplog.text and "same FM_KEY_FILE" in caplog.text


def test_clear_keys_from_before_sealing_are_read_and_sealed_in_place(store, mailer, tmp_path):
    old = _service(store, mailer)
    old.register("old@example.com", "a fine passphrase")
    material, _ = _generate("EdDSA")
    store.put(KEYS_PK, "legacykid0000000", {"alg": "EdDSA", "material": material, "created_at": 1.0})
    ring = KeyRing(store, "EdDSA", keep_for=60, sealers=Sealers(key_file=tmp_path / "k.key"))
    assert ring.signing_key().kid == "legacykid0000000"  # the key is kept, not replaced
    item = store.get(KEYS_PK, "legacykid0000000")
    assert "material" not in item.data and item.data["sealed"]["by"] == "file"
    assert material.encode() not in _raw(tmp_path)
    again = KeyRing(store, "EdDSA", keep_for=60, sealers=Sealers(key_file=tmp_path / "k.key"))
    assert again.signing_key().kid == "legacykid0000000"


def test_a_sealed_key_opens_only_as_itself(tmp_path):
    sealer = FileSealer(tmp_path / "k.key")
    sealed = sealer.seal(b"secret material", "kid-a")
    assert sealer.open(sealed, "kid-a") == b"secret material"
    with pytest.raises(SealError, match="does not open"):
        sealer.open(sealed, "kid-b")  # a record copied under another kid


def test_an_unwritable_key_file_says_what_to_set(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(SealError, match="cannot create the key file") as err:
        FileSealer(tmp_path / "a-file" / "k.key").seal(b"x", "kid")
    assert "FM_KEY_FILE" in err.value.hint and "FM_KMS_KEY_ID" in err.value.hint


@pytest.fixture
def kms(moto_endpoint, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", moto_endpoint)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    client = boto3.client("kms")
    return client, client.create_key(Description="flowmason signing keys")["KeyMetadata"]["KeyId"]


def test_on_aws_kms_seals_the_keys(store, mailer, tmp_path, kms):
    client, key_id = kms
    svc = _service(store, mailer, kms_key_id=key_id)
    svc.register("kms@example.com", "a fine passphrase")
    pair = svc.login("kms@example.com", "a fine passphrase")
    (item,) = store.query(KEYS_PK).items
    sealed = item.data["sealed"]
    assert sealed["by"] == "kms" and key_id in sealed["key"] and b"PRIVATE KEY" not in _raw(tmp_path)
    assert _service(store, mailer, kms_key_id=key_id).identify(pair.access_token)["subject"]
    # the encryption context binds the blob to its kid
    import base64

    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        client.decrypt(CiphertextBlob=base64.b64decode(sealed["blob"]),
                       EncryptionContext={"purpose": "flowmason-jwt-signing-key", "kid": "another"})


def test_moving_from_the_key_file_to_kms_reseals_without_losing_sessions(store, mailer, tmp_path, kms):
    _, key_id = kms
    local = _service(store, mailer)
    local.register("move@example.com", "a fine passphrase")
    pair = local.login("move@example.com", "a fine passphrase")
    assert store.query(KEYS_PK).items[0].data["sealed"]["by"] == "file"
    on_aws = _service(store, mailer, kms_key_id=key_id)
    assert on_aws.identify(pair.access_token)["subject"]
    assert store.query(KEYS_PK).items[0].data["sealed"]["by"] == "kms"
