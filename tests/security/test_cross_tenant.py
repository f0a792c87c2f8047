"""One tenant can never read or change another's data, through any route the app serves.

Tenant A saves a pipeline, runs it, makes an API key. Tenant B then calls
*every* authenticated route the assembled app has (the list comes from the
app itself, so routes other plugins add later are covered too), as a
logged-in owner and with an admin API key, with A's identifiers in the
path and the body. Each call must be refused (401/403/404/409/422) or, for
B's own listings, succeed without a trace of A's data; afterwards A's data
is unchanged.
"""
from __future__ import annotations

import itertools
import re
import time

import pytest

from tests.support.auth_api import register

def pipeline(marker):
    return {"name": f"pipeline-{marker}", "stages": [
        {"id": "say", "component_type": "logger", "config": {"message": f"secret of {marker}"}}]}
REFUSED = {401, 403, 404, 409, 422}
_PARAM = re.compile(r"{([a-zA-Z_]+)(?::[a-z]+)?}")


def _tenant(api, email, marker):
    acct = register(api, email)
    pid = api.post("/pipelines", headers=acct.headers, json=pipeline(marker)).json()["id"]
    run = api.post("/runs", headers=acct.headers, json={"pipeline_id": pid})
    assert run.status_code in (200, 201, 202), run.text
    rid = run.json()["id"]
    key = api.post("/auth/api-keys", headers=acct.headers, json={"name": "k", "scopes": ["admin"]}).json()
    for _ in range(1500):  # bounded wait (30 s) for the local run to finish
        if api.get(f"/runs/{rid}", headers=acct.headers).json()["status"] in ("completed", "failed"):
            break
        time.sleep(0.02)
    return acct, pid, rid, key


_NEUTRAL = ("1", "test", "output", "say")  # path values that name no tenant's resource


def _values(param, own, victim):
    """Candidate values of a path parameter: the victim's, and mixes with our own where two ids meet."""
    mapping = {"pipeline_id": "pid", "run_id": "rid", "other": "rid", "other_id": "rid", "org_id": "org",
               "user_id": "uid", "prefix": "prefix"}
    if param == "seq":
        return ["1"]
    if param == "idp":
        return ["test"]
    if param == "field":  # a run's or a stage's value (/values/{field})
        return ["output"]
    if param == "stage_id":  # the one stage both tenants' pipelines have
        return ["say"]
    if param == "other":  # a snapshot reference, RUN_ID@SEQ
        return [victim["rid"] + "@1", own["rid"] + "@1"]
    field = mapping.get(param, "rid")
    return [victim[field], own[field]]


@pytest.fixture
def api(tmp_path):
    """The app with every identity plugin on, SAML included, so its routes are in the list too."""
    from tests.support.saml_idp import saml_api

    with saml_api(f"sqlite:///{tmp_path / 'tenants.db'}") as harness:
        yield harness.client


def test_no_route_crosses_tenants(api, attacks):
    a, a_pid, a_rid, a_key = _tenant(api, "tenant-a@example.com", "tenant-a")
    b, b_pid, b_rid, b_key = _tenant(api, "tenant-b@example.com", "tenant-b")
    victim = {"pid": a_pid, "rid": a_rid, "org": a.org_id, "uid": a.user_id, "prefix": a_key["prefix"]}
    own = {"pid": b_pid, "rid": b_rid, "org": b.org_id, "uid": b.user_id, "prefix": b_key["prefix"]}
    secrets = [a_pid, a_rid, a.user_id, a_key["prefix"], a.email, "secret of tenant-a", "pipeline-tenant-a"]
    body = {"pipeline_id": a_pid, "org_id": a.org_id, "email": a.email, "role": "owner", "name": "x",
            "scopes": ["read"], "stages": pipeline("tenant-b")["stages"], "inputs": {}, "version": 1}

    def as_b():
        tokens = api.post("/auth/login", json={"email": b.email, "password": b.password}).json()
        return [("session", {"Authorization": f"Bearer {tokens['access_token']}"}),
                ("admin api key", {"X-API-Key": b_key["key"]})]

    routes = [s for s in api.app.state.routes if s.auth is not None]
    assert len(routes) >= 20  # the app's own routes, the auth routes and whatever else is loaded
    assert any(s.path.startswith("/auth/saml/") for s in routes)
    tried_routes = set()
    server_errors: list[str] = []
    empty_answers: list[str] = []
    for spec in routes:
        params = _PARAM.findall(spec.path)
        combos = list(itertools.product(*[_values(p, own, victim) for p in params])) or [()]
        for combo in combos:
            neutral = all(v in _NEUTRAL for v in combo)  # no tenant's ids at all (e.g. the SAML IdP name)
            if params and not neutral and all(v.split("@")[0] in own.values() or v in _NEUTRAL for v in combo):
                continue  # entirely our own resources: not an attack
            path = spec.path
            for p, v in zip(params, combo):
                path = re.sub(r"{%s(?::[a-z]+)?}" % p, v, path, count=1)
            for kind, headers in as_b():
                resp = api.request(spec.method, path, headers=headers,
                                   json=body if spec.request_model is not None else None)
                sent = path + (repr(body) if spec.request_model is not None else "")
                # an error may repeat what B sent; anything else of A's in the answer is a leak
                leaked = any(s in resp.text and s not in sent for s in secrets)
                if resp.status_code >= 500:
                    server_errors.append(f"{spec.method} {path} -> {resp.status_code}")
                if neutral:
                    ok = not leaked and (resp.status_code < 300 or resp.status_code in REFUSED)
                elif params and resp.status_code < 300:
                    # allowed only if the answer is the one a made-up id gets: then it says nothing about A
                    control = path
                    for v in combo:
                        if v.split("@")[0] in victim.values():
                            control = control.replace(v.split("@")[0], "run_00000000000000000000000")
                    twin = api.request(spec.method, control, headers=headers,
                                       json=body if spec.request_model is not None else None)
                    ok = not leaked and (twin.status_code, twin.text) == (resp.status_code, resp.text)
                    if ok:
                        empty_answers.append(f"{spec.method} {spec.path} -> {resp.status_code} {resp.text[:40]}")
                elif params:
                    # refused; a 5xx that leaks nothing also keeps A's data safe (and is reported below)
                    ok = (resp.status_code in REFUSED or resp.status_code >= 500) and not leaked
                else:
                    ok = not leaked and (resp.status_code < 300 or resp.status_code in REFUSED)
                tried_routes.add(f"{spec.method} {spec.path}")
                assert attacks.attempt("cross-tenant", f"{kind} {spec.method} {path}", ok), \
                    (kind, spec.method, path, resp.status_code, resp.text[:300])
    assert len(tried_routes) == len(routes)
    if server_errors:
        print("cross-tenant: server errors (not leaks):", *server_errors, sep="\n  ")
    if empty_answers:
        print("cross-tenant: answered like a missing id (not leaks):", *sorted(set(empty_answers)), sep="\n  ")
    # A's world is exactly as it was
    assert api.get(f"/pipelines/{a_pid}", headers=a.headers).json()["latest_version"] == 1
    # B's cancel and replay attempts left A's run alone (it may still be finishing on a busy machine)
    assert api.get(f"/runs/{a_rid}", headers=a.headers).json()["status"] in ("completed", "pending", "running")
    assert api.get("/runs", headers={"X-API-Key": a_key["key"]}).status_code == 200
    members = api.get(f"/auth/orgs/{a.org_id}/members", headers=a.headers).json()["items"]
    assert [m["user_id"] for m in members] == [a.user_id]
    assert [o["org_id"] for o in api.get("/auth/orgs", headers=a.headers).json()["items"]] == [a.org_id]
