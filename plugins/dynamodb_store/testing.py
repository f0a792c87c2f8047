"""A real DynamoDB wire endpoint on 127.0.0.1 for tests and benchmarks: moto's server mode.

``local_dynamodb()`` starts moto's threaded HTTP server on a free port with
dummy credentials in the environment (so a developer's real AWS account is
never touched), yields ``http://127.0.0.1:PORT``, and stops it afterwards.
``dynamodb_url(endpoint)`` names a fresh table on it, created on first open.
Needs the ``dev`` extra (moto[server]).

Moto applies each request without a lock, so two concurrent ``UpdateItem``
calls on one item can lose an update, which DynamoDB never does (each
request is atomic there). The server below runs requests one at a time
(connections stay concurrent), making moto as atomic per request as the
real service, so the concurrency tests test our code, not moto's races.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from typing import Any, Iterator

_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION")


def _serialized_server() -> Any:
    from moto.moto_server import threaded_moto_server as tms

    class SerializedMotoServer(tms.ThreadedMotoServer):
        def _server_entry(self) -> None:  # moto's own, with the app behind a lock
            app = tms.DomainDispatcherApplication(tms.create_backend_app)
            lock = threading.Lock()

            def one_at_a_time(environ: Any, start_response: Any) -> list[bytes]:
                with lock:
                    return list(app(environ, start_response))

            self._server = tms.make_server(
                self._ip_address, self._port, one_at_a_time, True, request_handler=tms.MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return SerializedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)


@contextlib.contextmanager
def local_dynamodb() -> Iterator[str]:

    saved = {k: os.environ.get(k) for k in _CREDENTIAL_VARS}
    for key in _CREDENTIAL_VARS:
        os.environ.pop(key, None)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    werkzeug_log = logging.getLogger("werkzeug")  # one line per request otherwise
    saved_level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)
    server = _serialized_server()
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        werkzeug_log.setLevel(saved_level)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def dynamodb_url(endpoint: str, table: str | None = None) -> str:
    """URL of ``table`` (default: a fresh random name) on ``endpoint``, created when opened."""
    table = table or f"fm-test-{uuid.uuid4().hex[:12]}"
    return f"dynamodb://{table}?endpoint_url={endpoint}&region=us-east-1&create=1"
