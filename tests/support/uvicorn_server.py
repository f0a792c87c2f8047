"""An ASGI app under a real uvicorn on 127.0.0.1, configured the way ``fm serve`` configures it.

``serving(app, env)`` starts uvicorn in a thread with ``listen.uvicorn_options``
built from ``env`` (FM_TRUSTED_PROXIES, FM_HEADER_TIMEOUT_S, ...) and
``config`` (more uvicorn.Config keywords, e.g. ``lifespan="off"`` for an app
a TestClient already started) and yields the base URL; it stops the server
afterwards. ``client(base, source)`` connects from another loopback address
(127.0.0.2...), as a second machine would.
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Iterator


@contextlib.contextmanager
def serving(app: Any, env: dict[str, str] | None = None, **config: Any) -> Iterator[str]:
    import uvicorn

    from flowmason.kernel.settings import Settings
    from flowmason.plugins.http_api.listen import uvicorn_options

    options = {**uvicorn_options(Settings.from_env(env or {})), **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def client(base: str, source: str = "127.0.0.1", **options: Any) -> Any:
    """An httpx client whose connections leave from ``source`` (any 127.x address is this machine's)."""
    import httpx

    return httpx.Client(base_url=base, transport=httpx.HTTPTransport(local_address=source), timeout=30, **options)
