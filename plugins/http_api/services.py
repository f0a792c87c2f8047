"""What the API's endpoints work with: the store, the run queue, the tenant's repositories.

``Services(store, queue)`` is the deployed shape (``flowmason.functions.api``
builds it with the SQS queue; runs go to the worker Lambda).
``Services.local()`` runs them in the API process itself, on the durable
engine's ``LocalEngine`` (an in-process queue, recovery of runs whose
process died, runs parked at shutdown): that is ``fm serve`` on a laptop,
with no AWS at all.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from flowmason.plugins.loaders import PipelineRepository
from flowmason.kernel.runs import DEFAULT_ORG, RunRepository, namespace
from flowmason.kernel.storage import Store, open_store

log = logging.getLogger("flowmason.api")


def __getattr__(name: str) -> Any:
    # the in-process queue lives with the durable engine; loaded on use, not on the API's cold start
    if name == "LocalQueue":
        from flowmason.plugins.durable import LocalQueue

        return LocalQueue
    raise AttributeError(name)


class Services:
    """``store`` may be a Store or a URL: a URL is opened on first use, so building the app
    (Lambda's cold start) does not pay for the AWS SDK before a request needs it."""

    def __init__(self, store: "Store | str | None", queue: Any) -> None:
        self._store = store if isinstance(store, Store) else None
        self._store_url = None if isinstance(store, Store) else store
        self._lock = threading.Lock()
        self.queue = queue
        self.engine: Any = None  # the LocalEngine when runs execute in this process

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = open_store(self._store_url)
        return self._store

    @classmethod
    def local(cls, store_url: str | None = None, *, recover: bool = True) -> "Services":
        """Runs in this process (``fm serve``); ``recover`` resumes runs whose process died, at start and while serving."""
        from flowmason.plugins.durable import LocalEngine

        store = open_store(store_url)
        engine = LocalEngine(store, recover=recover)
        services = cls(store, engine.queue)
        services.engine = engine
        return services

    @classmethod
    def from_env(cls) -> "Services":
        """The local shape from ``FM_STORE``; with a queue service, build ``Services(store, queue)`` instead."""
        from flowmason.kernel.settings import get_settings

        return cls.local(get_settings().store)

    # -- lifecycle (the ASGI lifespan; not called under mangum) --
    def start(self) -> None:
        if self.engine is None and getattr(self.queue, "jobs", False) is None:
            # an in-process queue given bare (test apps): run its messages here, without recovery scans
            from flowmason.plugins.durable import LocalEngine

            self.engine = LocalEngine(self.store, recover=False, queue=self.queue)
        if self.engine is not None:
            self.engine.start()

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop()

    def cancel(self, identity: dict[str, Any] | None, run_id: str) -> Any:
        """Cancel a run: at once when this process runs it (or its process died), else at the worker's next poll."""
        from flowmason.plugins.durable import request_cancel

        jobs = self.engine.jobs if self.engine is not None else None
        return request_cancel(self.store, self.org(identity), run_id, jobs=jobs)

    # -- per request --
    @staticmethod
    def org(identity: dict[str, Any] | None) -> str:
        return str((identity or {}).get("org_id") or DEFAULT_ORG)

    def runs(self, identity: dict[str, Any] | None) -> RunRepository:
        return RunRepository(self.store, namespace(self.org(identity)))

    def pipelines(self, identity: dict[str, Any] | None) -> PipelineRepository:
        return PipelineRepository(self.store, namespace(self.org(identity)))
