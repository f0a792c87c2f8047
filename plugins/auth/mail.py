"""Outgoing email: SMTP (smtplib) or the console, with HTML + plain-text templates.

``mailer_from_url("smtp://user:pw@host:587?starttls=1&from=noreply@x")``
returns an ``SmtpMailer``; ``console`` a ``ConsoleMailer`` that writes the
message to a stream (stderr) for development, where nobody runs a mail
server. Templates are ``templates/<name>.txt`` and ``.html`` read with
``string.Template``; values are HTML-escaped in the HTML part.
"""
from __future__ import annotations

import html
import sys
from importlib import resources
from string import Template
from typing import IO, Any
from urllib.parse import parse_qs, unquote, urlsplit

from flowmason.kernel.errors import ConfigError


def render(name: str, **values: Any) -> tuple[str, str]:
    """(text, html) of template ``name`` with ``values`` substituted."""
    folder = resources.files(__package__).joinpath("templates")
    text = Template(folder.joinpath(f"{name}.txt").read_text("utf-8")).substitute(values)
    safe = {k: html.escape(str(v), quote=True) for k, v in values.items()}
    body = Template(folder.joinpath(f"{name}.html").read_text("utf-8")).substitute(safe)
    return text, body


def build_message(sender: str, to: str, subject: str, text: str, html_body: str):
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content(text)
    msg.add_alternative(html_body, subtype="html")
    return msg


class ConsoleMailer:
    """Prints messages instead of sending them (development)."""

    def __init__(self, stream: IO[str] | None = None, sender: str = "flowmason@localhost") -> None:
        self.stream = stream
        self.sender = sender
        self.sent: list[Any] = []  # EmailMessage objects, newest last

    def send(self, to: str, subject: str, text: str, html_body: str) -> None:
        msg = build_message(self.sender, to, subject, text, html_body)
        self.sent.append(msg)
        stream = self.stream or sys.stderr
        stream.write(f"--- email to {to}: {subject}\n{text}\n---\n")


class SmtpMailer:
    def __init__(self, host: str, port: int, *, sender: str, username: str | None = None,
                 password: str | None = None, starttls: bool = False, use_ssl: bool = False,
                 timeout: float = 10.0) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password = username, password
        self.starttls, self.use_ssl, self.timeout = starttls, use_ssl, timeout

    def send(self, to: str, subject: str, text: str, html_body: str) -> None:
        import smtplib
        import ssl

        msg = build_message(self.sender, to, subject, text, html_body)
        context = ssl.create_default_context()
        if self.use_ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if self.starttls:
                client.starttls(context=context)
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(msg)


def mailer_from_url(url: str):
    if url in ("", "console"):
        return ConsoleMailer()
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError(f"bad mail setting {url.split('@')[-1]!r}", field="FM_MAIL",
                          hint="use console or smtp://user:password@host:port?starttls=1&from=noreply@example.com")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    use_ssl = parts.scheme == "smtps" or query.get("ssl") == "1"
    return SmtpMailer(
        parts.hostname, parts.port or (465 if use_ssl else 25),
        sender=query.get("from", "flowmason@localhost"),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        starttls=query.get("starttls") == "1", use_ssl=use_ssl,
    )
