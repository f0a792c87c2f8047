"""The engine in one process: an in-process queue, the job handler, recovery while it runs.

``LocalEngine`` is what ``fm serve`` runs runs with (no queue service):
messages become asyncio tasks in the server's event loop. At start, and
every ``scan_s``, it resumes runs whose process died (``recovery``). On
``stop()`` (the server's shutdown, SIGTERM included) it parks the runs in
flight: their records stay ``running``, their leases are released and a
``parked`` marker is written, so the next start resumes them at once
instead of waiting for their leases to expire.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from flowmason.kernel.storage import Store

from . import leases, recovery
from .jobs import Jobs

log = logging.getLogger("flowmason.durable")


class LocalQueue:
    """Runs each message as an asyncio task in one event loop (no queue service)."""

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


class LocalEngine:
    """The job handler on a LocalQueue, with recovery; ``start()`` inside the loop, ``await stop()`` at shutdown."""

    def __init__(self, store: Store, *, recover: bool = True, queue: LocalQueue | None = None) -> None:
        self.store = store
        self.queue = queue if queue is not None else LocalQueue()
        # one process: no chunk messages worth the overhead, the stock foreach runs in place
        self.jobs = Jobs(store, self.queue, fanout_min_items=None)
        self.queue.jobs = self.jobs
        self.recover = recover
        self._scanner: asyncio.Task | None = None
        self.recovered: list[str] = []

    def start(self) -> None:
        self.queue.bind(asyncio.get_running_loop())
        if self.recover and self._scanner is None:
            self._scanner = asyncio.get_running_loop().create_task(self._scan_forever())

    async def _scan_forever(self) -> None:
        for _ in range(10**9):  # bounded; cancelled by stop()
            cfg = leases.settings()
            try:
                found = await asyncio.to_thread(recovery.scan, self.store, self.queue.send, settings=cfg)
                self.recovered.extend(found)
            except Exception:  # noqa: BLE001 - a store hiccup: the next scan tries again
                log.warning("recovery scan failed", exc_info=True)
            await asyncio.sleep(cfg.scan_s)

    async def stop(self) -> None:
        if self._scanner is not None:
            self._scanner.cancel()
            await asyncio.gather(self._scanner, return_exceptions=True)
            self._scanner = None
        parked = await self.jobs.park_all("shutdown")
        if parked:
            log.info("parked %d run(s); the next start resumes them", parked)
        await self.queue.drain()
