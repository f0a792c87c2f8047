"""The ``fm_register_routes`` contract of kernel/hookspecs.py, through a real server: returns, errors, auth, OpenAPI."""
from __future__ import annotations

from pydantic import BaseModel

from flowmason.kernel.errors import NotFoundError
from flowmason.kernel.plugins import hookimpl

from .test_api_http import assert_error


class GreetIn(BaseModel):
    name: str


class GreetOut(BaseModel):
    greeting: str


class Greeter:
    """A plugin contributing three routes: a sync public one, an async one with models, one that raises."""

    @hookimpl
    def fm_register_routes(self, register):
        def hello(request):  # sync: run in a thread
            return {"hello": request.path_params["name"]}

        async def greet(request):
            body: GreetIn = request.state.body
            return 201, GreetOut(greeting=f"hi {body.name} from {request.state.identity['subject']}")

        def missing(request):
            raise NotFoundError("no such greeting", field="name", hint="try another")

        register("GET", "/t-hello/{name}", hello, auth=None, summary="Say hello")
        register("POST", "/t-greet", greet, auth="run", request_model=GreetIn, response_model=GreetOut,
                 status_code=201, tags=["test"])
        register("GET", "/t-missing", missing)


class Duplicate:
    @hookimpl
    def fm_register_routes(self, register):
        register("GET", "/t-hello/{name}", lambda request: {}, auth=None)


class FirstAuth:
    @hookimpl
    def fm_register_authenticators(self, register):
        register("t-first", lambda request: {"subject": "first", "org_id": "default", "roles": [], "scopes": ["*"]})


class SecondAuth:
    @hookimpl
    def fm_register_authenticators(self, register):
        register("t-second", lambda request: {"subject": "second", "org_id": "default", "roles": [], "scopes": ["*"]})


def test_a_plugin_route_serves_its_contract_and_appears_in_openapi(make_server):
    client = make_server(extra=[Greeter()])
    assert client.get("/t-hello/ann").json() == {"hello": "ann"}
    made = client.post("/t-greet", json={"name": "bo"})
    assert made.status_code == 201 and made.json() == {"greeting": "hi bo from local"}  # local single-user mode
    assert_error(client.post("/t-greet", json={"nom": "bo"}), 422, "validation")
    assert_error(client.post("/t-greet", content=b"{not json"), 400, "bad_json")
    err = assert_error(client.get("/t-missing"), 404, "not_found")
    assert err["hint"] == "try another" and err["field"] == "name"
    doc = client.get("/openapi.json").json()
    assert doc["paths"]["/t-hello/{name}"]["get"]["summary"] == "Say hello"
    greet = doc["paths"]["/t-greet"]["post"]
    assert greet["tags"] == ["test"] and "GreetOut" in str(greet["responses"]) and "GreetIn" in str(greet)


def test_the_first_registered_authenticator_that_answers_wins(make_server):
    client = make_server(extra=[Greeter(), FirstAuth(), SecondAuth()])
    assert client.post("/t-greet", json={"name": "x"}).json() == {"greeting": "hi x from first"}


def test_two_plugins_registering_one_route_is_an_error_naming_the_route(make_server):
    import pytest

    from flowmason.kernel.errors import PluginError

    with pytest.raises(PluginError, match="/t-hello/{name}"):
        make_server(extra=[Greeter(), Duplicate()])
