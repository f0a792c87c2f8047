"""Errors of the identity plugins, each carrying the HTTP status the API answers with.

``http_status`` and ``headers`` are what the HTTP API's error handler reads
(``plugins/http_api/app.py``), so routes simply raise these.

They are ``FlowMasonError`` subclasses, so the CLI and logs print them the
same way as every other error (what, where, how to fix). Messages never
contain secrets (passwords, tokens, key material).
"""
from __future__ import annotations

from flowmason.kernel.errors import FlowMasonError


class AuthError(FlowMasonError):
    """Base: the request could not be authenticated or authorised."""

    code = "auth"
    http_status = 401


class InvalidCredentials(AuthError):
    """Wrong email/password, or a token that is forged, expired, revoked or malformed."""

    code = "invalid_credentials"
    http_status = 401


class TokenReuseDetected(AuthError):
    """A refresh token that was already rotated came back: its whole family is revoked."""

    code = "refresh_reuse"
    http_status = 401


class Forbidden(AuthError):
    """Authenticated, but the role or scope does not allow this."""

    code = "forbidden"
    http_status = 403


class SignupClosed(Forbidden):
    """Self-registration is off (the default on a server): an admin invites users."""

    code = "signup_closed"


class NotFound(AuthError):
    """Absent, or present in another organization (the two answers are the same on purpose)."""

    code = "not_found"
    http_status = 404


class Conflict(AuthError):
    code = "conflict"
    http_status = 409


class PolicyError(AuthError):
    """A password or request that breaks a stated rule; the message says which."""

    code = "policy"
    http_status = 422


class LockedOut(AuthError):
    """Too many failed logins: retry after ``retry_after`` seconds."""

    code = "locked_out"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int, **kw) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}
