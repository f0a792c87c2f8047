"""/openapi.json is a valid OpenAPI 3.1 document that says what the server accepts; /docs renders it offline."""
from __future__ import annotations

import shutil

import jsonschema
import pytest

from tests.support.auth_api import auth_api, register


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """An API with every route plugin (auth on, so /auth/* is there too) and its document."""
    with auth_api(f"sqlite:///{tmp_path_factory.mktemp('oa') / 'api.db'}") as api:
        owner = register(api, "owner@example.com")
        yield api, owner, api.get("/openapi.json").json()


def test_the_document_passes_a_real_validator_and_its_templates_are_callable(served):
    from openapi_spec_validator import validate

    _, _, doc = served
    validate(doc)
    for path, ops in doc["paths"].items():
        assert ":" not in path, path  # starlette converters ({seq:int}) are not OpenAPI templates
        for op in ops.values():
            named = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert named == {part[1:-1] for part in path.split("/") if part.startswith("{")}, path
    seq = doc["paths"]["/runs/{run_id}/snapshots/{seq}"]["get"]["parameters"]
    assert {"name": "seq", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}} in seq
    stage = [p for p in doc["paths"]["/runs/{run_id}/diff-output/{other}"]["get"]["parameters"] if p["name"] == "stage"]
    assert stage and stage[0]["required"] is True and stage[0]["in"] == "query"


def _schema_accepts(doc, path, method, body) -> bool:
    schema = doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    root = {**schema, "components": doc["components"]}
    return jsonschema.Draft202012Validator(root).is_valid(body)


STAGES = [{"id": "a", "component_type": "variable-set", "config": {"name": "x", "value": 1}}]
CASES = [  # path, body: the schema and the server must agree on each
    ("/auth/api-keys", {"name": "k", "scopes": ["read"], "expires_in": 0}),
    ("/auth/api-keys", {"name": "k", "scopes": ["read"], "expires_in": 3600}),
    ("/auth/orgs/{org_id}/members", {"email": ""}),
    ("/auth/orgs/{org_id}/invites", {"email": "nobody at all"}),
    ("/auth/orgs/{org_id}/invites", {"email": "new@example.com"}),
    ("/pipelines", {"id": None, "name": None, "stages": [{}]}),
    ("/pipelines", {"name": "no stages"}),
    ("/pipelines", {"name": "legacy type", "stages": [{"id": "a", "type": "variable-set",
                                                       "config": {"name": "x", "value": 1}}]}),
    ("/pipelines", {"id": None, "name": "ok", "stages": STAGES}),
    ("/runs", {"pipeline": {}}),
    ("/runs", {}),
    ("/runs", {"pipeline": {"name": "inline", "stages": STAGES}}),
]


@pytest.mark.parametrize("path, body", CASES, ids=[f"{p} {sorted(b)}" for p, b in CASES])
def test_request_schemas_accept_what_the_server_accepts(served, path, body):
    api, owner, doc = served
    valid = _schema_accepts(doc, path, "post", body)
    answer = api.post(path.replace("{org_id}", owner.org_id), headers=owner.headers, json=body)
    accepted = answer.status_code < 400
    assert accepted == valid, (valid, answer.status_code, answer.text[:300])


def test_405_names_the_allowed_methods(served):
    api, owner, _ = served
    answer = api.request("TRACE", "/runs", headers=owner.headers)
    assert answer.status_code == 405 and answer.json()["error"]["code"] == "method_not_allowed"
    assert set(answer.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_docs_assets_are_served_here(served):
    api, _, _ = served
    page = api.get("/docs")
    assert page.status_code == 200 and "docs/swagger-ui-bundle.js" in page.text
    assert "http" not in page.text.split("<body>")[1]  # nothing is fetched from elsewhere
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    js = api.get("/docs/swagger-ui-bundle.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript") and len(js.content) > 100_000
    assert api.get("/docs/swagger-editor.js").status_code == 404  # only the listed assets


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_docs_page_renders_every_operation_in_headless_chromium(served):
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.support.uvicorn_server import serving

    api, _, doc = served
    with serving(api.app, lifespan="off") as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"),
                                     args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            elsewhere: list[str] = []
            errors: list[str] = []
            page.on("request", lambda req: None if req.url.startswith(base) else elsewhere.append(req.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/docs")
            page.wait_for_selector(".opblock", timeout=30_000)
            operations = sum(len(ops) for ops in doc["paths"].values())
            assert page.locator(".opblock").count() == operations
            assert page.locator(".info .title").inner_text().startswith("FlowMason API")
            assert not elsewhere and not errors, (elsewhere, errors)
        finally:
            browser.close()
