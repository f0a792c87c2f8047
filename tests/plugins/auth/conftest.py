"""Fixtures: an auth service on a real SQLite file, and the HTTP API with authentication on."""
from __future__ import annotations

import pytest

from flowmason.plugins.auth.mail import ConsoleMailer
from flowmason.plugins.auth.service import AuthService
from flowmason.plugins.auth.settings import AuthSettings


@pytest.fixture
def store(tmp_path):
    from flowmason.kernel.storage import open_store

    s = open_store(f"sqlite:///{tmp_path / 'auth.db'}")
    yield s
    s.close()


@pytest.fixture
def mailer():
    import io

    return ConsoleMailer(stream=io.StringIO())


@pytest.fixture
def service(store, mailer):
    # 4 bcrypt rounds keep the suite fast; test_auth_passwords checks the real default (12)
    return AuthService(AuthSettings(enabled=True, bcrypt_rounds=4), store, mailer=mailer)


@pytest.fixture
def api(tmp_path, mailer):
    from tests.support.auth_api import auth_api

    with auth_api(f"sqlite:///{tmp_path / 'api.db'}", mailer=mailer) as client:
        yield client
