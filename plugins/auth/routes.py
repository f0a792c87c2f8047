"""The ``/auth`` routes, contributed to the HTTP API through ``fm_register_routes``.

Public: register (when ``FM_AUTH_SIGNUP=1``) and its confirmation, login,
refresh, password reset (request, confirm), invitation acceptance.
Authenticated: me, logout, API keys, organizations, members, invitations.
Answers to public routes never depend on whether an address has an
account: registration and reset answer 202 and mail from a background task. The app
wrapper (``plugins/http_api/app.py``) has already authenticated the
request, checked the route's scope and validated the body; these
endpoints then check what a scope cannot express: that the organization
in the path is the caller's own (anything else is 404, the same answer
as "absent", so tenants cannot probe each other), and role rules (only
owners touch owners; a key never outranks its creator's role).

Store work is synchronous, so endpoints are plain functions that the app
runs in its thread pool.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .apikeys import MAX_TTL
from .directory import EMAIL_PATTERN, ROLE_SCOPES, normalise_email, outranks
from .errors import Forbidden, NotFound, PolicyError, SignupClosed
from .service import get_service


class RegisterIn(BaseModel):
    email: str = Field(max_length=254, pattern=EMAIL_PATTERN)
    password: str = Field(max_length=1024)
    org_name: str | None = Field(default=None, max_length=200)


class TokenIn(BaseModel):
    token: str = Field(min_length=20, max_length=200)


class InviteIn(BaseModel):
    email: str = Field(max_length=254, pattern=EMAIL_PATTERN)
    role: Literal["owner", "admin", "member", "viewer"] = "member"


class InviteAcceptIn(BaseModel):
    token: str = Field(min_length=20, max_length=200)
    password: str = Field(max_length=1024)


class LoginIn(BaseModel):
    email: str = Field(max_length=254, pattern=EMAIL_PATTERN)
    password: str = Field(max_length=1024)
    org_id: str | None = Field(default=None, max_length=100)


class RefreshIn(BaseModel):
    refresh_token: str = Field(max_length=4096)


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Literal["read", "run", "admin"]] = Field(min_length=1)
    expires_in: int | None = Field(default=None, ge=60, le=MAX_TTL, description="seconds (60 to 5 years); none means no expiry")


class ResetRequestIn(BaseModel):
    email: str = Field(max_length=254, pattern=EMAIL_PATTERN)


class ResetConfirmIn(BaseModel):
    token: str = Field(max_length=200)
    password: str = Field(max_length=1024)


class OrgIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class SwitchIn(BaseModel):
    org_id: str = Field(max_length=100)


class MemberIn(BaseModel):
    email: str = Field(max_length=254, pattern=EMAIL_PATTERN)
    role: Literal["owner", "admin", "member", "viewer"] = "member"


class RoleIn(BaseModel):
    role: Literal["owner", "admin", "member", "viewer"]


def _identity(request) -> dict[str, Any]:
    return request.state.identity


def _role(identity: dict[str, Any]) -> str:
    roles = identity.get("roles") or []
    return roles[0] if roles and roles[0] in ROLE_SCOPES else "viewer"


def _session_only(identity: dict[str, Any]) -> None:
    if identity.get("kind") != "session":
        raise Forbidden("this needs a logged-in user, not an API key", hint="log in with email and password")


def _own_org(request) -> tuple[dict[str, Any], str]:
    identity = _identity(request)
    org = request.path_params["org_id"]
    if org != identity.get("org_id"):
        # another tenant's organization looks exactly like a missing one
        raise NotFound("no such organization", hint="switch to it first (POST /auth/orgs/switch)")
    return identity, org


# -- accounts and sessions --

def _accepted(status: str, work, *args):
    """202 with ``status``, and ``work(*args)`` after the answer: its outcome and timing stay private."""
    from starlette.background import BackgroundTask
    from starlette.responses import JSONResponse

    return JSONResponse({"status": status}, status_code=202, background=BackgroundTask(_quietly, work, *args))


def _quietly(work, *args) -> None:
    import logging

    try:
        work(*args)
    except PolicyError:
        pass  # not an address: nobody to write to
    except Exception:  # noqa: BLE001 - a mail server failure must not surface to the requester
        logging.getLogger("flowmason.auth").exception("sending an account email failed")


def register_account(request):
    body: RegisterIn = request.state.body
    svc = get_service(request)
    if not svc.settings.signup:
        raise SignupClosed("self-registration is off on this server",
                           hint="ask an admin of your organization to invite you (or to run `fm auth create-user`); "
                                "the server's operator opens registration with FM_AUTH_SIGNUP=1")
    email = normalise_email(body.email)
    svc.policy.check(body.password, email=email)  # the rules are public: saying which one fails reveals nothing
    return _accepted("check your email: the link in it finishes creating the account",
                     svc.signups.request, email, body.password, body.org_name)


def register_confirm(request):
    svc = get_service(request)
    account = svc.signups.confirm(request.state.body.token)
    tokens = svc.sessions.open(account["user_id"], account["org_id"])
    return 201, {**account, **tokens.to_dict()}


def invite_member(request):
    identity, org = _own_org(request)
    body: InviteIn = request.state.body
    svc = get_service(request)
    inviter = (svc.directory.profile(identity["subject"]) or {}).get("email") or "An admin"
    role = _actor_role(identity)
    normalise_email(body.email)
    if not outranks(role, "admin") or (body.role == "owner" and role != "owner"):
        raise Forbidden("only admins invite members, and only owners invite owners")
    return _accepted("the invitation is on its way", svc.signups.invite, org, role, inviter, body.email, body.role)


def accept_invite(request):
    body: InviteAcceptIn = request.state.body
    svc = get_service(request)
    uid, org = svc.signups.accept(body.token, body.password)
    tokens = svc.sessions.open(uid, org)
    return 201, {"user_id": uid, "org_id": org, **tokens.to_dict()}


def login(request):
    body: LoginIn = request.state.body
    client = request.client.host if request.client else "unknown"  # uvicorn set it from trusted proxies only
    return get_service(request).login(body.email, body.password, body.org_id, client=client).to_dict()


def refresh(request):
    return get_service(request).sessions.refresh(request.state.body.refresh_token).to_dict()


def logout(request):
    identity = _identity(request)
    _session_only(identity)
    get_service(request).logout(identity)
    return {"revoked": True}


def me(request):
    identity = _identity(request)
    svc = get_service(request)
    profile = svc.directory.profile(identity["subject"]) or {}
    return {**{k: identity.get(k) for k in ("subject", "org_id", "roles", "scopes", "kind")},
            "email": profile.get("email"), "orgs": svc.directory.orgs_of(identity["subject"])}


# -- password reset --

def reset_request(request):
    body: ResetRequestIn = request.state.body
    service = get_service(request)  # built now: configuration errors belong to this response
    return _accepted("if an account uses this address, a reset link is on its way", service.resets.request, body.email)


def reset_confirm(request):
    body: ResetConfirmIn = request.state.body
    get_service(request).reset_password(body.token, body.password)
    return {"status": "password changed; log in with the new password"}


# -- API keys --

def create_api_key(request):
    identity = _identity(request)
    _session_only(identity)
    body: ApiKeyIn = request.state.body
    created = get_service(request).api_keys.create(identity["org_id"], identity["subject"], _role(identity),
                                            name=body.name, scopes=list(body.scopes), expires_in=body.expires_in)
    return 201, created


def list_api_keys(request):
    identity = _identity(request)
    keys = get_service(request).api_keys.list(identity["org_id"])
    if "admin" not in (identity.get("scopes") or []):
        keys = [k for k in keys if k["user_id"] == identity["subject"]]
    return {"items": keys}


def revoke_api_key(request):
    identity = _identity(request)
    get_service(request).api_keys.revoke(identity["org_id"], request.path_params["prefix"], identity["subject"],
                                  _role(identity) if identity.get("kind") == "session" else
                                  ("admin" if "admin" in identity.get("scopes", []) else "viewer"))
    return {"revoked": True}


# -- organizations --

def list_orgs(request):
    return {"items": get_service(request).directory.orgs_of(_identity(request)["subject"])}


def create_org(request):
    identity = _identity(request)
    _session_only(identity)
    org = get_service(request).directory.create_org(request.state.body.name, identity["subject"])
    return 201, {"org_id": org, "name": request.state.body.name.strip(), "role": "owner"}


def switch_org(request):
    identity = _identity(request)
    _session_only(identity)
    return get_service(request).switch_org(identity, request.state.body.org_id).to_dict()


def list_members(request):
    _, org = _own_org(request)
    return {"items": get_service(request).directory.members(org)}


def _actor_role(identity: dict[str, Any]) -> str:
    role = _role(identity)
    if identity.get("kind") != "session":
        # an admin-scoped key acts as an admin at most, never as an owner
        return "admin" if "admin" in (identity.get("scopes") or []) and outranks(role, "admin") else "viewer"
    return role


def add_member(request):
    identity, org = _own_org(request)
    body: MemberIn = request.state.body
    svc = get_service(request)
    uid = svc.directory.user_id_for(body.email)
    if uid is None:
        raise NotFound("no account uses this email", field="email",
                       hint="invite them instead (POST /auth/orgs/{org_id}/invites)")
    if svc.directory.role(org, uid) is not None:
        from .errors import Conflict

        raise Conflict("already a member", hint="change their role with PUT .../members/{user_id}")
    svc.directory.set_member(org, _actor_role(identity), uid, body.role)
    return 201, {"user_id": uid, "role": body.role}


def set_member_role(request):
    identity, org = _own_org(request)
    uid = request.path_params["user_id"]
    svc = get_service(request)
    if svc.directory.role(org, uid) is None:
        raise NotFound("no such member")
    svc.directory.set_member(org, _actor_role(identity), uid, request.state.body.role)
    return {"user_id": uid, "role": request.state.body.role}


def remove_member(request):
    identity, org = _own_org(request)
    get_service(request).directory.remove_member(org, _actor_role(identity), request.path_params["user_id"])
    return {"removed": True}


def register_routes(register) -> None:
    tags = ["auth"]
    r = register
    r("POST", "/auth/register", register_account, name="auth_register", auth=None,
      summary="Ask for an account: a link to finish it is emailed (only when FM_AUTH_SIGNUP=1)",
      request_model=RegisterIn, status_code=202, tags=tags)
    r("POST", "/auth/register/confirm", register_confirm, name="auth_register_confirm", auth=None,
      summary="Finish registration with the emailed token: the account, its organization and tokens",
      request_model=TokenIn, status_code=201, tags=tags)
    r("POST", "/auth/invites/accept", accept_invite, name="auth_accept_invite", auth=None,
      summary="Join the organization of an emailed invitation (a new address sets its password)",
      request_model=InviteAcceptIn, status_code=201, tags=tags)
    r("POST", "/auth/login", login, name="auth_login", auth=None, summary="Log in: access and refresh tokens",
      request_model=LoginIn, response_model=TokensOut, tags=tags)
    r("POST", "/auth/refresh", refresh, name="auth_refresh", auth=None, summary="Rotate a refresh token",
      request_model=RefreshIn, response_model=TokensOut, tags=tags)
    r("POST", "/auth/logout", logout, name="auth_logout", auth="read", summary="End this session", tags=tags)
    r("GET", "/auth/me", me, name="auth_me", auth="read", summary="Who am I", tags=tags)
    r("POST", "/auth/password-reset", reset_request, name="auth_reset_request", auth=None,
      summary="Email a password reset link", request_model=ResetRequestIn, status_code=202, tags=tags)
    r("POST", "/auth/password-reset/confirm", reset_confirm, name="auth_reset_confirm", auth=None,
      summary="Set a new password with a reset token", request_model=ResetConfirmIn, tags=tags)
    r("POST", "/auth/api-keys", create_api_key, name="auth_create_api_key", auth="read",
      summary="Create an API key (the key is shown only in this response)", request_model=ApiKeyIn,
      status_code=201, tags=tags)
    r("GET", "/auth/api-keys", list_api_keys, name="auth_list_api_keys", auth="read",
      summary="API keys of this organization (admins see all, others their own)", tags=tags)
    r("DELETE", "/auth/api-keys/{prefix}", revoke_api_key, name="auth_revoke_api_key", auth="read",
      summary="Revoke an API key", tags=tags)
    r("GET", "/auth/orgs", list_orgs, name="auth_list_orgs", auth="read", summary="My organizations", tags=tags)
    r("POST", "/auth/orgs", create_org, name="auth_create_org", auth="read", summary="Create an organization",
      request_model=OrgIn, status_code=201, tags=tags)
    r("POST", "/auth/orgs/switch", switch_org, name="auth_switch_org", auth="read",
      summary="Tokens for another of my organizations", request_model=SwitchIn, response_model=TokensOut, tags=tags)
    r("GET", "/auth/orgs/{org_id}/members", list_members, name="auth_list_members", auth="read",
      summary="Members of my organization", tags=tags)
    r("POST", "/auth/orgs/{org_id}/members", add_member, name="auth_add_member", auth="admin",
      summary="Add a member by email", request_model=MemberIn, status_code=201, tags=tags)
    r("POST", "/auth/orgs/{org_id}/invites", invite_member, name="auth_invite_member", auth="admin",
      summary="Email someone an invitation to this organization", request_model=InviteIn, status_code=202,
      tags=tags)
    r("PUT", "/auth/orgs/{org_id}/members/{user_id}", set_member_role, name="auth_set_member_role", auth="admin",
      summary="Change a member's role", request_model=RoleIn, tags=tags)
    r("DELETE", "/auth/orgs/{org_id}/members/{user_id}", remove_member, name="auth_remove_member", auth="admin",
      summary="Remove a member", tags=tags)
