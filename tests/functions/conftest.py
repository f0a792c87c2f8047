"""Fixtures for the Lambda handlers: the test component and the local AWS stack (moto on 127.0.0.1)."""
from __future__ import annotations

import importlib
import json
import os

import pytest

from tests.support.polling import wait_for  # noqa: F401 - shared with the tests here

from . import components


@pytest.fixture
def tally_plugin():
    from flowmason.kernel import plugins

    components.reset()
    plugins.reset(extra=[components.TallyPlugin()])
    yield components
    plugins.reset()
    components.reset()


# FLOWMASON_TEST_IAM=1 runs every stack here with moto's IAM enforcement and the template's roles
IAM_ENFORCED = os.environ.get("FLOWMASON_TEST_IAM") == "1"


@pytest.fixture
def aws_calls(monkeypatch):
    """Records every AWS call made from here on (tests/support/aws_calls.py)."""
    from tests.support.aws_calls import AwsCalls

    return AwsCalls().install(monkeypatch)


@pytest.fixture
def make_stack(tally_plugin, monkeypatch, aws_calls):
    """Start a LocalStack with overrides; each is stopped after the test.

    Every AWS call the functions made must be one the template's IAM
    policies allow: the test fails at teardown, naming the call, if not.
    """
    pytest.importorskip("moto")
    pytest.importorskip("samtranslator")
    from flowmason.functions.local_stack import LocalStack

    started = []

    def make(**options):
        options.setdefault("iam", IAM_ENFORCED)
        stack = LocalStack(**options).start()
        started.append(stack)
        for key, value in stack.environment().items():
            monkeypatch.setenv(key, value)
        return stack

    yield make
    denied = []
    for stack in started:
        stack.stop()
        denied += stack_denied(aws_calls, stack)
    assert not denied, "calls template.yaml does not allow:\n" + "\n".join(denied)


def stack_denied(calls, stack) -> list[str]:
    if not calls.by_function(stack):
        return ["no AWS call of a function was recorded: the recorder is not hooked in"] if stack.run_worker else []
    return calls.denied(stack)


@pytest.fixture
def api_handler(monkeypatch):
    """``functions.api.handler`` built from the current environment (after make_stack set it)."""

    def load():
        import flowmason.functions.api as api

        return importlib.reload(api).handler

    return load


def http_event(method: str, path: str, body=None, query: str = "", headers: dict | None = None) -> dict:
    """An API Gateway HTTP API (payload format 2.0) event."""
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": {"content-type": "application/json", "host": "api.example.test", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.test", "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "pytest"},
            "requestId": "req", "routeKey": "$default", "stage": "$default",
            "time": "25/Nov/2026:12:00:00 +0000", "timeEpoch": 1795608000000,
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def call(handler, method: str, path: str, body=None, query: str = "") -> tuple[int, dict]:
    response = handler(http_event(method, path, body, query), None)
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else {}


def finished_result(handler, run_id: str, timeout: float = 60.0) -> dict:
    def done():
        status, body = call(handler, "GET", f"/runs/{run_id}/result")
        return body if status == 200 else None

    return wait_for(done, timeout=timeout)
