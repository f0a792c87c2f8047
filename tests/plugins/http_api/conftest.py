"""An API server under uvicorn on 127.0.0.1 (a free port), with the embedded SQLite store and in-process runs,
and the server defaults `fm serve` applies (FM_HTTP_DENY_PRIVATE on)."""
from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.functions import components


@pytest.fixture
def make_server(tmp_path):
    """``make_server(plugins=[...], max_body=...)`` -> an httpx client on a running server."""
    import uvicorn

    from flowmason.kernel import plugins
    from flowmason.kernel.settings import use_server_defaults
    from flowmason.plugins.http_api.app import create_app
    from flowmason.plugins.http_api.services import Services

    running = []

    def make(*, extra=(), max_body: int | None = None) -> httpx.Client:
        components.reset()
        plugins.reset(extra=[components.TallyPlugin(), *extra])
        use_server_defaults("fm serve")  # what `fm serve` does first (the autouse fixture undoes it)
        app = create_app(Services.local(f"sqlite:///{tmp_path / 'api.db'}"), max_body=max_body)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        running.append((server, thread, client))
        return client

    yield make
    for server, thread, client in running:
        client.close()
        server.should_exit = True
        thread.join(timeout=10)
    plugins.reset()
    components.reset()


def wait_result(client: httpx.Client, run_id: str, timeout: float = 30.0, headers=None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/runs/{run_id}/result", headers=headers)
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 202, r.text
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish within {timeout}s")
