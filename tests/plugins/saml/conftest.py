"""Fixture: the HTTP API with SAML on, trusting an identity provider whose key pair is made per test."""
from __future__ import annotations

import pytest


@pytest.fixture
def saml(tmp_path):
    from tests.support.saml_idp import saml_api

    with saml_api(f"sqlite:///{tmp_path / 'saml.db'}") as harness:
        yield harness
