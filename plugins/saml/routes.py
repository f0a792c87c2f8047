"""The ``/auth/saml/{idp}/...`` routes: metadata, login, ACS, single logout.

Messages travel by the HTTP-POST binding: an outgoing message is an HTML
page whose form posts itself to the IdP (or, with ``?format=json``, the
fields as JSON for scripts and tests); an incoming one is a form post. A
successful login answers with FlowMason tokens as JSON (plus the RelayState
the login started with). Bodies are read through the HTTP API's bounded
reader.
"""
from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qs

from .errors import SamlError
from .service import get_service
from .xmltools import decode_post, encode_post

MAX_FORM_BYTES = 512 * 1024


async def _form(request) -> dict[str, str]:
    from flowmason.plugins.http_api import read_body

    body = await read_body(request, MAX_FORM_BYTES)
    try:
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise SamlError("the form is not application/x-www-form-urlencoded") from None
    return {k: v[0] for k, v in fields.items()}


def _post_page(request, url: str, field: str, xml: bytes, relay_state: str | None = None):
    from starlette.responses import HTMLResponse, JSONResponse

    value = encode_post(xml)
    if request.query_params.get("format") == "json":
        return JSONResponse({"url": url, field: value, "RelayState": relay_state})
    relay = (f'<input type="hidden" name="RelayState" value="{html.escape(relay_state, quote=True)}"/>'
             if relay_state else "")
    page = (
        "<!doctype html><html><body onload=\"document.forms[0].submit()\">"
        f'<form method="post" action="{html.escape(url, quote=True)}">'
        f'<input type="hidden" name="{field}" value="{value}"/>{relay}'
        "<noscript><button type=\"submit\">Continue</button></noscript></form></body></html>"
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


def metadata(request):
    from starlette.responses import Response

    xml = get_service(request).sp.metadata(request.path_params["idp"])
    return Response(xml, media_type="application/samlmetadata+xml")


def login(request):
    svc = get_service(request)
    idp = request.path_params["idp"]
    relay = request.query_params.get("relay_state")
    if relay is not None and len(relay) > 80:
        raise SamlError("relay_state is longer than 80 bytes (the SAML limit)", field="relay_state")
    _, xml = svc.sp.authn_request(idp)
    return _post_page(request, svc.config.idp(idp).sso_url, "SAMLRequest", xml, relay)


async def acs(request):
    from starlette.concurrency import run_in_threadpool

    form = await _form(request)
    if "SAMLResponse" not in form:
        raise SamlError("no SAMLResponse in the form", field="SAMLResponse")
    idp = request.path_params["idp"]
    svc = get_service(request)

    def finish() -> dict[str, Any]:
        login = svc.sp.consume(idp, decode_post(form["SAMLResponse"]), form.get("RelayState"))
        return svc.login(login)

    return await run_in_threadpool(finish)


async def slo(request):
    """IdP-initiated LogoutRequest (answered with a signed LogoutResponse), or the answer to ours."""
    from starlette.concurrency import run_in_threadpool

    form = await _form(request)
    idp = request.path_params["idp"]
    svc = get_service(request)
    if "SAMLRequest" in form:
        def end() -> tuple[Any, int]:
            message = svc.sp.idp_logout_request(idp, decode_post(form["SAMLRequest"]))
            ended = svc.end_sessions(idp, message.name_id, message.session_indexes)
            return svc.sp.logout_response(idp, message.request_id), ended

        xml, _ended = await run_in_threadpool(end)
        return _post_page(request, svc.config.idp(idp).slo_url or "", "SAMLResponse", xml, form.get("RelayState"))
    if "SAMLResponse" in form:
        await run_in_threadpool(svc.sp.idp_logout_response, idp, decode_post(form["SAMLResponse"]))
        return {"status": "logged out"}
    raise SamlError("no SAMLRequest or SAMLResponse in the form", field="SAMLRequest")


def logout(request):
    """SP-initiated logout: end this session here, then tell the IdP (signed LogoutRequest)."""
    svc = get_service(request)
    identity = request.state.identity or {}
    idp = request.path_params["idp"]
    session = svc.auth.sessions.session(identity.get("session_id") or "") or {}
    if session.get("saml_idp") != idp:
        raise SamlError("this session did not come from that identity provider")
    svc.auth.sessions.revoke(identity["session_id"])
    _, xml = svc.sp.logout_request(idp, session["saml_name_id"], session.get("saml_session_index"),
                                   session.get("saml_name_id_format"))
    return _post_page(request, svc.config.idp(idp).slo_url or "", "SAMLRequest", xml)


def register_routes(register) -> None:
    tags = ["saml"]
    register("GET", "/auth/saml/{idp}/metadata", metadata, name="saml_metadata", auth=None,
             summary="Signed SAML SP metadata", tags=tags)
    register("GET", "/auth/saml/{idp}/login", login, name="saml_login", auth=None,
             summary="Start a SAML login (signed AuthnRequest, HTTP-POST binding)", tags=tags)
    register("POST", "/auth/saml/{idp}/acs", acs, name="saml_acs", auth=None,
             summary="Assertion consumer: verify the IdP's response, answer with tokens", tags=tags)
    register("POST", "/auth/saml/{idp}/slo", slo, name="saml_slo", auth=None,
             summary="Single logout endpoint (IdP-initiated requests and answers to ours)", tags=tags)
    register("POST", "/auth/saml/{idp}/logout", logout, name="saml_logout", auth="read",
             summary="SP-initiated single logout", tags=tags)
