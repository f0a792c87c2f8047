"""moto's server mode on 127.0.0.1: the AWS wire endpoint behind ``fm serve --aws-local``.

``moto_server()`` starts moto's threaded HTTP server (DynamoDB, SQS, ...)
on a free port with dummy credentials in the environment, so a
developer's real AWS account is never touched; it yields
``http://127.0.0.1:PORT`` and stops the server (and puts the environment
back) afterwards. moto is an optional dependency: without it this says
which extra to install (``flowmason[aws-local]``) instead of failing on an
import. ``local_stack`` builds the table and queues of ``template.yaml`` on
it; the test suite reuses it (``tests/support/dynamodb.py``).

This is product code, not a test helper: it moved here from the DynamoDB
plugin's ``testing.py`` so that ``--aws-local`` no longer depends on a
module the wheel should not ship.

Moto applies each request without a lock, so two concurrent ``UpdateItem``
calls on one item can lose an update, which DynamoDB never does (each
request is atomic there). The server below runs requests one at a time
(connections stay concurrent), making moto as atomic per request as the
real service, so what runs on it behaves as it will on AWS.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any, Iterator

from flowmason.kernel.errors import ConfigError

_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION")


def _serialized_server() -> Any:
    try:
        from moto.moto_server import threaded_moto_server as tms
    except ImportError:
        raise ConfigError("the local AWS stack needs moto's server mode, which is not installed",
                          hint="pip install 'flowmason[aws-local]'") from None

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
def moto_server() -> Iterator[str]:
    """A running moto server; yields its endpoint URL."""
    server = _serialized_server()  # first: a missing moto changes nothing in the environment
    saved = {k: os.environ.get(k) for k in _CREDENTIAL_VARS}
    for key in _CREDENTIAL_VARS:
        os.environ.pop(key, None)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    werkzeug_log = logging.getLogger("werkzeug")  # one line per request otherwise
    saved_level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)
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


def managed_policy_document(name: str) -> dict[str, Any] | None:
    """An AWS managed policy's document by name (``AWSLambdaSQSQueueExecutionRole``), from moto's bundled copy."""
    import json

    try:
        from moto.iam.aws_managed_policies import aws_managed_policies_data
    except ImportError:
        raise ConfigError("reading AWS managed policies needs moto, which is not installed",
                          hint="pip install 'flowmason[aws-local]'") from None
    entry = json.loads(aws_managed_policies_data).get(name)
    return entry["Document"] if entry else None
