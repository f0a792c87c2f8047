"""Password reset: real SMTP delivery (aiosmtpd on 127.0.0.1), single use, newest only, 24 h, same answer."""
from __future__ import annotations

import re
import time

import pytest

from flowmason.plugins.auth.errors import InvalidCredentials, PolicyError
from flowmason.plugins.auth.mail import SmtpMailer, mailer_from_url
from tests.support.auth_api import auth_api, create_account, local_smtp


def _token(message) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    return re.search(r"token=([A-Za-z0-9_\-%]+)", text).group(1)


def test_reset_email_goes_through_smtp_with_text_and_html(tmp_path):
    with local_smtp() as (host, port, inbox):
        mailer = mailer_from_url(f"smtp://{host}:{port}?from=noreply@flowmason.test")
        assert isinstance(mailer, SmtpMailer) and mailer.port == port
        with auth_api(f"sqlite:///{tmp_path / 's.db'}", mailer=mailer) as api:
            acct = create_account(api, "reset@example.com")  # no signup mail in the inbox
            same = api.post("/auth/password-reset", json={"email": "reset@example.com"})
            nobody = api.post("/auth/password-reset", json={"email": "nobody@example.com"})
            assert (same.status_code, same.json()) == (nobody.status_code, nobody.json()) and same.status_code == 202
            assert len(inbox) == 1
            msg = inbox[0]
            assert msg["To"] == "reset@example.com" and msg["From"] == "noreply@flowmason.test"
            html = msg.get_body(preferencelist=("html",)).get_content()
            token = _token(msg)
            assert f"token={token}" in html and "<a href=" in html
            ok = api.post("/auth/password-reset/confirm", json={"token": token, "password": "a brand new passphrase"})
            assert ok.status_code == 200
            again = api.post("/auth/password-reset/confirm", json={"token": token, "password": "yet another passphrase"})
            assert again.status_code == 401
            assert api.post("/auth/login", json={"email": acct.email, "password": acct.password}).status_code == 401
            assert api.post("/auth/login", json={"email": acct.email,
                                                 "password": "a brand new passphrase"}).status_code == 200
            # the reset ended the sessions opened before it
            assert api.get("/auth/me", headers=acct.headers).status_code == 401


def test_token_is_stored_hashed_and_newest_only(service, mailer):
    service.register("two@example.com", "a fine passphrase")
    first = service.resets.request("two@example.com")
    second = service.resets.request("two@example.com")
    assert first != second and len(mailer.sent) == 2
    import hashlib

    assert service.store.get(f"auth#reset#{hashlib.sha256(second.encode()).hexdigest()}", "token") is not None
    assert service.store.get(f"auth#reset#{hashlib.sha256(first.encode()).hexdigest()}", "token") is None
    with pytest.raises(InvalidCredentials):
        service.reset_password(first, "a brand new passphrase")
    service.reset_password(second, "a brand new passphrase")


def test_token_expires_after_24_hours(service, monkeypatch):
    service.register("late@example.com", "a fine passphrase")
    token = service.resets.request("late@example.com")
    import flowmason.plugins.auth.reset as reset

    real = time.time
    monkeypatch.setattr(reset.time, "time", lambda: real() + 24 * 3600 + 1)
    with pytest.raises(InvalidCredentials, match="expired"):
        service.reset_password(token, "a brand new passphrase")
    monkeypatch.setattr(reset.time, "time", real)
    service.reset_password(token, "a brand new passphrase")  # 23:59 later it still works


def test_unknown_email_sends_nothing_and_new_password_follows_policy(service, mailer):
    assert service.resets.request("ghost@example.com") is None and mailer.sent == []
    service.register("pol@example.com", "a fine passphrase")
    token = service.resets.request("pol@example.com")
    with pytest.raises(PolicyError, match="shorter"):
        service.reset_password(token, "short")
    service.reset_password(token, "a long new passphrase")  # a refused password does not burn the token


def test_html_template_escapes_values():
    from flowmason.plugins.auth.mail import render

    text, html = render("password_reset", email="<b>x</b>@example.com", link="https://x/?a=1&b=2", hours=24)
    assert "&lt;b&gt;" in html and "<b>x</b>" in text and "a=1&amp;b=2" in html


def test_bad_mail_setting_is_a_clear_error():
    from flowmason.kernel.errors import ConfigError

    with pytest.raises(ConfigError, match="bad mail setting") as err:
        mailer_from_url("smtp:///nohost")
    assert err.value.field == "FM_MAIL"


def test_console_mailer_writes_both_parts_to_its_stream():
    import io

    from flowmason.plugins.auth.mail import ConsoleMailer

    assert isinstance(mailer_from_url("console"), ConsoleMailer)
    out = io.StringIO()
    ConsoleMailer(stream=out).send("to@example.com", "Subject line", "plain body", "<p>html body</p>")
    text = out.getvalue()
    assert "to@example.com" in text and "Subject line" in text and "plain body" in text


def test_reset_emails_are_capped_per_hour(service, mailer):
    service.register("flood@example.com", "a fine passphrase")
    tokens = [service.resets.request("flood@example.com") for _ in range(8)]
    assert len(mailer.sent) == 5 and tokens[5:] == [None, None, None]
    service.reset_password(tokens[4], "a brand new passphrase")  # the last one sent still works
