"""The API Lambda: the FlowMason ASGI app behind API Gateway (HTTP API, payload v2) through mangum.

The app is built once per container, at import (Lambda's init phase):
routes from the loaded plugins, the store from ``FM_STORE``, the run queue
from ``FM_QUEUE_URL`` (SQS; without it runs execute in this process, as
under ``fm serve``). Only starlette, pydantic and the kernel load here;
boto3 loads when the store or queue first talks to AWS. Server defaults
apply (``use_server_defaults``: ``FM_HTTP_DENY_PRIVATE`` on unless set).
"""
from __future__ import annotations

from mangum import Mangum

from flowmason.kernel.settings import get_settings, use_server_defaults
from flowmason.plugins.http_api.app import create_app
from flowmason.plugins.http_api.services import Services

use_server_defaults("Lambda API")


def services_from_env() -> Services:
    settings = get_settings()
    if not settings.queue_url:
        return Services.from_env()
    from .sqs import SqsQueue

    return Services(settings.store, SqsQueue(settings.queue_url))


app = create_app(services_from_env())
handler = Mangum(app, lifespan="off", api_gateway_base_path="/")
