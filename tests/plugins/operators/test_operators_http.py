"""http-request against a real HTTP server on 127.0.0.1: methods, JSON, headers, errors, limits."""
from __future__ import annotations

import pytest

from flowmason.kernel.errors import ConfigError, StageError
from flowmason.plugins.operators.http import timeout_seconds


def test_get_json_with_query_params(ops, http_server):
    out = ops.run_one("http-request", url=f"{http_server.base}/echo", params={"q": "flow", "n": 3})
    assert out["status_code"] == 200
    assert out["success"] is True
    assert out["body"]["method"] == "GET"
    assert out["body"]["query"] == {"q": "flow", "n": "3"}
    assert out["headers"]["content-type"] == "application/json"
    assert isinstance(out["elapsed_ms"], int) and out["elapsed_ms"] >= 0
    assert out["url"].startswith(f"{http_server.base}/echo?")


def test_query_params_key_from_templates(ops, http_server):
    out = ops.run_one("http-request", url=f"{http_server.base}/echo", query_params={"since": "1h"})
    assert out["body"]["query"] == {"since": "1h"}


def test_post_json_body_and_headers_from_inputs(ops, http_server):
    p = ops.pipeline(ops.stage(
        "post", "http-request", url="{{input.api}}/echo", method="post",
        headers={"X-Trace": "{{input.trace}}", "X-Flag": True},
        body={"name": "{{input.name}}", "tags": "{{input.tags}}"},
    ))
    out = ops.run(p, {"api": http_server.base, "trace": "t-1", "name": "ada", "tags": ["a", "b"]}).output
    sent = http_server.requests[-1]
    assert sent.method == "POST"
    assert sent.json() == {"name": "ada", "tags": ["a", "b"]}  # a whole-value template keeps the list
    assert sent.headers["x-trace"] == "t-1" and sent.headers["x-flag"] == "true"
    assert sent.headers["content-type"] == "application/json"
    assert out["body"]["json"] == {"name": "ada", "tags": ["a", "b"]}


def test_string_body_is_sent_as_is_and_text_reply_stays_text(ops, http_server):
    out = ops.run_one("http-request", url=f"{http_server.base}/echo", method="PUT", body="raw=1&x=2",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert http_server.requests[-1].body == b"raw=1&x=2"
    assert out["body"]["json"] is None
    text = ops.run_one("http-request", url=f"{http_server.base}/text")
    assert text["body"] == "plain words"


def test_secret_header_from_allowlisted_env(ops, http_server, monkeypatch):
    monkeypatch.setenv("FM_VAR_API_TOKEN", "s3cret")
    ops.run_one("http-request", url=f"{http_server.base}/echo", headers={"Authorization": "Bearer {{env.FM_VAR_API_TOKEN}}"})
    assert http_server.requests[-1].headers["authorization"] == "Bearer s3cret"


def test_redirect_is_followed_unless_disabled(ops, http_server):
    out = ops.run_one("http-request", url=f"{http_server.base}/redirect")
    assert out["status_code"] == 200 and out["body"]["query"] == {"from": "redirect"}
    out = ops.run_one("http-request", url=f"{http_server.base}/redirect", follow_redirects=False)
    assert out["status_code"] == 302 and out["success"] is False


@pytest.mark.parametrize("code", [404, 500])
def test_error_status_is_an_output_not_a_failure(ops, http_server, code):
    out = ops.run_one("http-request", url=f"{http_server.base}/status/{code}")
    assert out["status_code"] == code
    assert out["success"] is False
    assert out["body"] == {"error": f"status {code}"}


def test_raise_for_status_fails_the_stage(ops, http_server):
    p = ops.pipeline(ops.stage("fetch", "http-request", url=f"{http_server.base}/status/404", raise_for_status=True))
    err, run = ops.fails(p)
    assert isinstance(err, StageError)
    assert err.stage == "fetch" and err.field == "config.raise_for_status"
    assert "HTTP 404" in err.message and "status 404" in err.message


def test_engine_retries_a_failing_request(ops, http_server):
    stage = ops.stage("fetch", "http-request", url=f"{http_server.base}/status/500", raise_for_status=True)
    stage["retry_config"] = {"max_retries": 2, "initial_delay_ms": 1}
    ops.fails(ops.pipeline(stage))
    assert [r.path for r in http_server.requests] == ["/status/500"] * 3


def test_timeout_names_url_and_field(ops, http_server):
    p = ops.pipeline(ops.stage("slow", "http-request", url=f"{http_server.base}/slow?ms=3000", timeout_ms=200))
    err, _ = ops.fails(p)
    assert err.stage == "slow" and err.field == "config.timeout"
    assert f"GET {http_server.base}/slow timed out after 200 ms" in err.message


def test_oversized_body_is_cut_off(ops, http_server):
    p = ops.pipeline(ops.stage("big", "http-request", url=f"{http_server.base}/big?bytes=5000", max_response_bytes=1000))
    err, _ = ops.fails(p)
    assert err.field == "config.max_response_bytes"
    assert "larger than max_response_bytes (1000 bytes" in err.message


def test_oversized_chunked_body_without_length_is_cut_off(ops, http_server):
    http_server.route("GET", "/stream", lambda r: (200, {"Content-Type": "text/plain", "X-Chunked": "1"}, b"y" * 20_000))
    ok = ops.run_one("http-request", url=f"{http_server.base}/stream")
    assert ok["body"] == "y" * 20_000
    err, _ = ops.fails(ops.pipeline(ops.stage("s", "http-request", url=f"{http_server.base}/stream", max_response_bytes=4096)))
    assert "larger than max_response_bytes (4096 bytes" in err.message


def test_connection_refused_names_url_without_secrets(ops, closed_port):
    url = f"http://user:pa55word@127.0.0.1:{closed_port}/hook?token=abc123"
    p = ops.pipeline(ops.stage("call", "http-request", url=url, headers={"Authorization": "Bearer hdr-secret"}))
    err, run = ops.fails(p)
    assert err.stage == "call" and err.field == "config.url"
    assert f"GET http://127.0.0.1:{closed_port}/hook failed: ConnectError: Connection refused" in err.message
    for secret in ("pa55word", "abc123", "hdr-secret"):
        assert secret not in str(err) and secret not in str(run.error)


def test_json_response_type_rejects_text(ops, http_server):
    err, _ = ops.fails(ops.pipeline(ops.stage("s", "http-request", url=f"{http_server.base}/text", response_type="json")))
    assert err.field == "config.response_type" and "not JSON" in err.message


def test_static_config_errors_name_stage_and_field(ops):
    p = ops.pipeline(
        ops.stage("no-url", "http-request"),
        ops.stage("bad-method", "http-request", url="http://127.0.0.1:1/", method="FETCH"),
        ops.stage("bad-timeout", "http-request", url="http://127.0.0.1:1/", timeout=-5),
    )
    problems = {(e.stage, e.field) for e in ops.invalid(p)}
    assert problems == {("no-url", "config.url"), ("bad-method", "config.method"), ("bad-timeout", "config.timeout")}


def test_templated_config_is_checked_when_rendered(ops):
    p = ops.pipeline(ops.stage("s", "http-request", url="{{input.where}}"))
    err, _ = ops.fails(p, {"where": "ftp://example.org/file"})
    assert isinstance(err, ConfigError) and err.stage == "s" and err.field == "config.url"
    assert "not an http(s) URL" in err.message
    err, _ = ops.fails(p, {"where": 42})
    assert err.field == "config.url" and "must be string" in err.message


def test_timeout_units_of_old_files():
    assert timeout_seconds({}) == 30.0
    assert timeout_seconds({"timeout": 30}) == 30.0  # the earlier operator: seconds, at most 300
    assert timeout_seconds({"timeout": 30000}) == 30.0  # the shipped templates: milliseconds
    assert timeout_seconds({"timeout_ms": 250, "timeout": 9}) == 0.25
