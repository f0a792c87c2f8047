"""An HTTP API with authentication on, for tests and benchmarks.

``auth_api(store_url, ...)`` configures the auth plugin (settings, store,
a mailer), rebuilds the plugin registry so the app sees the authenticator
and the routes (and a rate limiter when ``ratelimit`` settings or
``extra_plugins`` implementing ``fm_register_rate_limiters`` are given),
and yields a started starlette ``TestClient``; afterwards it puts the
plugin state back. ``Account`` helpers register and log in users.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Iterator

from flowmason.plugins.auth.mail import ConsoleMailer
from flowmason.plugins.auth.service import configure
from flowmason.plugins.auth.service import get_service as configured_service
from flowmason.plugins.auth.settings import AuthSettings

_RL_VARS = ("FM_RATELIMIT", "FM_RATELIMIT_BACKEND", "FM_RATELIMIT_REDIS", "FM_RATELIMIT_STORE")


@contextlib.contextmanager
def auth_api(store_url: str, *, settings: AuthSettings | None = None, mailer: Any = None,
             ratelimit: dict[str, str] | None = None, env: dict[str, str] | None = None,
             extra_plugins: list[Any] | None = None) -> Iterator[Any]:
    from starlette.testclient import TestClient

    from flowmason.kernel import plugins
    from flowmason.kernel.storage import open_store
    from flowmason.plugins.http_api.app import create_app
    from flowmason.plugins.http_api.services import Services

    settings = settings or AuthSettings(enabled=True, bcrypt_rounds=4, signup=True)
    mailer = mailer or ConsoleMailer(stream=open(os.devnull, "w"))
    changes = {k: None for k in _RL_VARS}
    changes.update(ratelimit or {})
    changes.update(env or {})
    saved = {k: os.environ.get(k) for k in changes}
    for k, v in changes.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    store = open_store(store_url)
    service = configure(settings, store=store, mailer=mailer)
    plugins.reset(extra=extra_plugins)
    try:
        app = create_app(Services(open_store(store_url), _local_queue()))
        with TestClient(app) as client:
            client.service = service
            client.mailer = mailer
            yield client
    finally:
        configure(None)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        plugins.reset()


def _local_queue():
    from flowmason.plugins.http_api.services import LocalQueue

    return LocalQueue()


@dataclass
class Account:
    email: str
    password: str
    user_id: str
    org_id: str
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


def mailed_token(mailer: Any, to: str | None = None) -> str:
    """The token in the newest email (to ``to``, when given) the mailer sent."""
    import re
    from urllib.parse import unquote

    for msg in reversed(mailer.sent):
        if to is None or msg["To"] == to:
            text = msg.get_body(preferencelist=("plain",)).get_content()
            return unquote(re.search(r"token=([A-Za-z0-9_\-%]+)", text).group(1))
    raise AssertionError(f"no email to {to}")


def register(client: Any, email: str, password: str = "a long enough passphrase", org_name: str | None = None) -> Account:
    """Self-registration as a user does it (the server has FM_AUTH_SIGNUP on): ask, then open the mailed link."""
    resp = client.post("/auth/register", json={"email": email, "password": password, "org_name": org_name})
    assert resp.status_code == 202, resp.text
    # a client from auth_api knows its mailer; else the process-wide service's (configure() without a store)
    mailer = getattr(client, "mailer", None) or configured_service().mailer
    resp = client.post("/auth/register/confirm", json={"token": mailed_token(mailer, email)})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return Account(email, password, body["user_id"], body["org_id"], body["access_token"], body["refresh_token"])


class _Inbox:
    """aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        from email import message_from_bytes, policy

        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


@contextlib.contextmanager
def local_smtp() -> Iterator[tuple[str, int, list[Any]]]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1: yields (host, port, received messages)."""
    from aiosmtpd.controller import Controller

    from .net import free_port

    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield "127.0.0.1", controller.port, inbox.messages
    finally:
        controller.stop()


def create_account(client: Any, email: str, password: str = "a long enough passphrase") -> Account:
    """An account made the admin's way (``fm auth create-user``), then logged in over HTTP."""
    made = client.service.register(email, password)
    resp = client.post("/auth/login", json={"email": email, "password": password})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return Account(email, password, made["user_id"], made["org_id"], body["access_token"], body["refresh_token"])
