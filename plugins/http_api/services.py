"""What the API's endpoints work with: the store, the run queue, the tenant's repositories.

``Services.from_env()`` is the deployed shape: ``FM_STORE`` (a store URL)
and ``FM_QUEUE_URL`` (an SQS queue; runs go to the worker Lambda). Without
``FM_QUEUE_URL`` runs execute in the API process itself, as asyncio tasks
(``LocalQueue``): that is ``fm serve`` on a laptop, with no AWS at all.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from flowmason.kernel.pipelines import PipelineRepository
from flowmason.kernel.runs import DEFAULT_ORG, RunRepository, namespace
from flowmason.kernel.storage import Store, open_store

log = logging.getLogger("flowmason.api")


class LocalQueue:
    """Runs each message as an asyncio task in the server's event loop (no queue service)."""

    def __init__(self) -> None:
        self.jobs: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: set[asyncio.Task] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def send(self, body: dict[str, Any], *, delay_s: int = 0) -> None:
        loop = self.loop
        if loop is None:
            loop = self.loop = asyncio.get_running_loop()  # called from inside the loop before startup
        loop.call_soon_threadsafe(self._spawn, body, delay_s)

    def send_many(self, bodies: list[dict[str, Any]]) -> None:
        for body in bodies:
            self.send(body)

    def _spawn(self, body: dict[str, Any], delay_s: int) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(body, delay_s))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, body: dict[str, Any], delay_s: int) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        try:
            await self.jobs.handle(body)
        except Exception:  # noqa: BLE001 - a local run's infrastructure failure is logged, not fatal to the server
            log.exception("run %s failed in the worker", body.get("run_id"))

    async def drain(self) -> None:
        """Cancel what is still running (server shutdown)."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Services:
    """``store`` may be a Store or a URL: a URL is opened on first use, so building the app
    (Lambda's cold start) does not pay for the AWS SDK before a request needs it."""

    def __init__(self, store: "Store | str | None", queue: Any) -> None:
        self._store = store if isinstance(store, Store) else None
        self._store_url = None if isinstance(store, Store) else store
        self._lock = threading.Lock()
        self.queue = queue

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = open_store(self._store_url)
        return self._store

    def _local_jobs(self) -> None:
        if isinstance(self.queue, LocalQueue) and self.queue.jobs is None:
            from flowmason.functions.jobs import Jobs

            # one process: no chunk messages worth the overhead, the stock foreach runs in place
            self.queue.jobs = Jobs(self.store, self.queue, fanout_min_items=None)

    @classmethod
    def local(cls, store_url: str | None = None) -> "Services":
        services = cls(open_store(store_url), LocalQueue())
        services._local_jobs()
        return services

    @classmethod
    def from_env(cls) -> "Services":
        queue_url = os.environ.get("FM_QUEUE_URL")
        if not queue_url:
            return cls.local(os.environ.get("FM_STORE"))
        from flowmason.functions.sqs import SqsQueue

        return cls(os.environ.get("FM_STORE"), SqsQueue(queue_url))

    # -- lifecycle (the ASGI lifespan; not called under mangum) --
    def start(self) -> None:
        if isinstance(self.queue, LocalQueue):
            self.queue.bind(asyncio.get_running_loop())

    async def stop(self) -> None:
        if isinstance(self.queue, LocalQueue):
            await self.queue.drain()

    # -- per request --
    @staticmethod
    def org(identity: dict[str, Any] | None) -> str:
        return str((identity or {}).get("org_id") or DEFAULT_ORG)

    def runs(self, identity: dict[str, Any] | None) -> RunRepository:
        return RunRepository(self.store, namespace(self.org(identity)))

    def pipelines(self, identity: dict[str, Any] | None) -> PipelineRepository:
        return PipelineRepository(self.store, namespace(self.org(identity)))
