"""The identity service: one object that the routes, the authenticator and the CLI share.

``get_service()`` builds it once per process from ``AuthSettings`` (the
environment) and the store at ``FM_AUTH_STORE`` (else the default store);
``configure(...)`` replaces it (tests, embedding, benchmarks).

Login throttling (``throttle.py``): per account and client, a few free
tries, then each further try waits twice as long; nobody can lock an owner
out from another client. A success clears it for that client, a password
reset for all. Unknown emails spend the same bcrypt time as known ones,
whatever the password. Accounts are made by ``register`` (``fm auth
create-user``) or through email links (``signup.py``: self-registration
when ``FM_AUTH_SIGNUP=1``, invitations). Signing keys are sealed at rest
(``sealing.py``).
"""
from __future__ import annotations

import threading
from typing import Any

from flowmason.kernel.storage import Store, open_store

from .apikeys import ApiKeyService
from .directory import ROLE_SCOPES, Directory, normalise_email
from .errors import Forbidden, InvalidCredentials, LockedOut
from .keys import KeyRing
from .mail import mailer_from_url
from .passwords import PasswordHasher, PasswordPolicy
from .reset import ResetService
from .sealing import Sealers
from .sessions import SessionService, TokenPair
from .signup import SignupService
from .settings import AuthSettings
from .throttle import LoginThrottle


class AuthService:
    def __init__(self, settings: AuthSettings, store: Store, *, mailer=None) -> None:
        self.settings = settings
        self.store = store
        self.hasher = PasswordHasher(settings.bcrypt_rounds)
        self.policy = PasswordPolicy(settings.password_min_length)
        self.directory = Directory(store)
        self.keys = KeyRing(store, settings.algorithm, keep_for=settings.refresh_ttl,
                            sealers=Sealers(kms_key_id=settings.kms_key_id, key_file=settings.key_file))
        self.sessions = SessionService(store, self.keys, settings)
        self.api_keys = ApiKeyService(store, self.directory)
        self.mailer = mailer or mailer_from_url(settings.mail)
        self.throttle = LoginThrottle(store, free_tries=settings.login_max_failures, max_wait=settings.login_lockout)
        self.resets = ResetService(store, self.directory, self.hasher, self.policy, self.mailer,
                                   ttl=settings.reset_ttl, public_url=settings.public_url)
        self.signups = SignupService(store, self.directory, self.hasher, self.policy, self.mailer,
                                     ttl=settings.reset_ttl, public_url=settings.public_url)

    # -- accounts --
    def register(self, email: Any, password: Any, org_name: Any = None) -> dict[str, Any]:
        """Create an account and its organization now (``fm auth create-user``; the routes go by email link)."""
        email = normalise_email(email)
        self.policy.check(password, email=email)
        uid = self.directory.create_user(email, self.hasher.hash(password))
        org = self.directory.create_org(org_name or f"{email.split('@')[0]}'s organization", uid)
        return {"user_id": uid, "org_id": org, "email": email}

    def login(self, email: Any, password: Any, org_id: Any = None, *, client: str = "unknown") -> TokenPair:
        """Tokens for a right password; ``client`` (the caller's address) keys the throttle with the email."""
        email = normalise_email(email)
        if not isinstance(password, str):
            raise InvalidCredentials("wrong email or password")
        self.throttle.admit(email, client)
        uid = self.directory.user_id_for(email)
        profile = self.directory.profile(uid) if uid else None
        if profile is None or not profile.get("password_hash"):
            self.hasher.dummy_verify(password)
            self.throttle.failed(email, client)
            raise InvalidCredentials("wrong email or password")
        ok, upgraded = self.hasher.verify(password, profile["password_hash"])
        if not ok:
            self.throttle.failed(email, client)
            raise InvalidCredentials("wrong email or password")
        self.throttle.clear(email, client)
        if upgraded:
            self.directory.set_password_hash(uid, upgraded, if_version=profile["version"])
        return self.sessions.open(uid, self._pick_org(uid, org_id))

    def _pick_org(self, uid: str, org_id: Any) -> str:
        orgs = self.directory.orgs_of(uid)
        if org_id is None:
            if not orgs:
                raise Forbidden("this account belongs to no organization", hint="ask an admin to add you")
            return orgs[0]["org_id"]
        if not any(o["org_id"] == org_id for o in orgs):
            raise Forbidden("you are not a member of that organization")
        return org_id

    def switch_org(self, identity: dict, org_id: Any) -> TokenPair:
        return self.sessions.open(identity["subject"], self._pick_org(identity["subject"], org_id))

    def logout(self, identity: dict) -> None:
        if identity.get("session_id"):
            self.sessions.revoke(identity["session_id"])

    def reset_password(self, token: Any, new_password: Any) -> None:
        uid = self.resets.confirm(token, new_password)
        self.sessions.revoke_user(uid)
        profile = self.directory.profile(uid)
        if profile:
            self.throttle.clear(profile["email"])

    # -- requests --
    def identify(self, credential: str) -> dict[str, Any]:
        """The identity behind a bearer credential (access token or API key), or InvalidCredentials."""
        if credential.startswith("fmk_"):
            return self.api_keys.authenticate(credential)
        claims, session = self.sessions.verify_access(credential)
        role = self.directory.role(claims["org"], claims["sub"])
        if role is None:
            raise InvalidCredentials("no longer a member of this organization")
        return {"subject": claims["sub"], "org_id": claims["org"], "roles": [role],
                "scopes": sorted(ROLE_SCOPES[role] - {"owner"}), "kind": "session", "session_id": claims["sid"]}


class Authenticator:
    """What the HTTP API calls: ``await authenticate(request) -> identity | None``.

    Reads ``Authorization: Bearer <access token | API key>`` or
    ``X-API-Key: <key>``. A bad credential is ``None`` rather than an
    error, so public routes (login, refresh) still work for a client that
    sends a stale header; protected routes then answer 401. The reason is
    kept on ``request.state.auth_error``. Store reads run in the thread
    pool so a DynamoDB round trip never blocks the event loop.
    """

    def __init__(self, service: "AuthService | None" = None) -> None:
        self._service = service

    def service(self, request=None) -> AuthService:
        return self._service or get_service(request)

    @staticmethod
    def credential(request) -> str | None:
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            return header[7:].strip() or None
        return (request.headers.get("x-api-key") or "").strip() or None

    def identify(self, request) -> dict | None:
        credential = self.credential(request)
        if not credential:
            return None
        try:
            return self.service(request).identify(credential)
        except InvalidCredentials as exc:
            request.state.auth_error = exc.message
            return None

    async def authenticate(self, request) -> dict | None:
        from starlette.concurrency import run_in_threadpool

        if not self.credential(request):
            return None
        return await run_in_threadpool(self.identify, request)


_lock = threading.Lock()
_service: AuthService | None = None
_settings: AuthSettings | None = None


def settings() -> AuthSettings:
    global _settings
    with _lock:
        if _settings is None:
            _settings = AuthSettings.from_env()
        return _settings


def get_service(request=None) -> AuthService:
    """The process-wide service. Without ``FM_AUTH_STORE`` it uses the API's own store (``request.app``),
    so ``fm serve --store X`` keeps users beside the runs; else the default store."""
    global _service
    s = settings()
    with _lock:
        if _service is None:
            store = None
            if s.store_url is None and request is not None:
                store = getattr(getattr(request.app.state, "fm", None), "store", None)
            _service = AuthService(s, store or open_store(s.store_url))
        return _service


def configure(settings_: AuthSettings | None = None, *, store: Store | None = None, mailer=None) -> AuthService | None:
    """Replace the process-wide settings and service (tests, embedding). ``None`` resets to the environment.

    Without ``store`` the service is built on first use, on the API's store (see ``get_service``).
    """
    global _service, _settings
    with _lock:
        _settings = settings_
        _service = None
        if settings_ is not None and store is not None:
            _service = AuthService(settings_, store, mailer=mailer)
        return _service
