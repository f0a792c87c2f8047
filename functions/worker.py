"""The worker Lambda: SQS messages → the durable engine's ``Jobs.handle``, with partial batch failure reporting.

``handler`` is the run queue's consumer (event source mapping with
``ReportBatchItemFailures``): each record is one run, continuation or
fan-out chunk; a record that raises is reported in ``batchItemFailures`` so
only it comes back, after the visibility timeout, and after
``maxReceiveCount`` deliveries SQS moves it to the dead-letter queue.
``dead_letter_handler`` consumes that queue and marks the run failed with
the last error the worker recorded.

Neither loops on a message it cannot use: a body that is not JSON, or not
a message of the engine (``durable.jobs.message_problem``), is recorded
(``Jobs.record_poison``) and returned as handled, so SQS deletes it. A
storage failure (a checkpoint that cannot be written) fails the record, so
it comes back. While a batch is worked on, its messages are kept invisible
for ``FM_VISIBILITY_S`` from the last heartbeat (``visibility``): a worker
that dies has its runs redelivered within that, not after the queue's
visibility timeout. Provider keys named by ``FM_PROVIDER_KEYS`` (Secrets
Manager or SSM) are read at import, Lambda's init (``provider_keys``).

Each record gets a deadline: the invocation's remaining time
(``context.get_remaining_time_in_millis()``) minus a margin
(``FM_DEADLINE_MARGIN_MS``, default 10 s, at most a fifth of what is left),
so a long run stops cleanly and re-enqueues itself instead of being killed.

Configuration (environment): ``FM_STORE`` (``dynamodb://TABLE?region=...``),
``FM_QUEUE_URL``, ``FM_FANOUT_MIN_ITEMS`` (default 1000), ``FM_FANOUT_CHUNK_SIZE``
(default 100); the engine's lease settings (``FM_HEARTBEAT_S``, ``FM_LEASE_S``,
``FM_CANCEL_POLL_S``: see ``flowmason.plugins.durable.leases``). Logs are JSON
and metrics EMF, through aws-lambda-powertools.
boto3 loads on the first message, not at import. Server defaults apply
(``use_server_defaults``: ``FM_HTTP_DENY_PRIVATE`` on unless set).
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from . import provider_keys
from .visibility import Holding

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "flowmason-worker"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "FlowMason"))
_state: dict[str, Any] = {}
provider_keys.load()  # cold start: FM_PROVIDER_KEYS -> the environment the providers read


def configure(jobs: Any, *, dead_letter: Any = None) -> None:
    """Use this ``Jobs`` (and this one for the dead-letter handler) instead of one built from the environment."""
    _state["jobs"] = jobs
    _state["dead_letter_jobs"] = dead_letter


def get_jobs() -> Any:
    jobs = _state.get("jobs")
    if jobs is None:
        from flowmason.kernel.errors import ConfigError
        from flowmason.kernel.settings import get_settings
        from flowmason.kernel.storage import open_store
        from flowmason.plugins.durable import Jobs

        from .sqs import SqsQueue

        settings = get_settings()
        if not settings.store or not settings.queue_url:
            raise ConfigError("the worker needs FM_STORE and FM_QUEUE_URL", field="environment",
                              hint="template.yaml sets both on the worker function")
        jobs = Jobs(open_store(settings.store), SqsQueue(settings.queue_url),
                    fanout_min_items=settings.fanout_min_items, chunk_size=settings.fanout_chunk_size)
        _state["jobs"] = jobs
    return jobs


def _deadline(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    left_ms = float(remaining())
    from flowmason.kernel.settings import get_settings

    margin_ms = min(get_settings().deadline_margin_ms, left_ms / 5)
    return time.monotonic() + (left_ms - margin_ms) / 1000


def _body(record: Any, jobs: Any) -> Any:
    """The record's JSON body, or None when it is not JSON (then it is recorded as poison)."""
    try:
        return json.loads(record.body)
    except (TypeError, ValueError) as exc:
        jobs.record_poison(str(record.body), f"the body is not JSON ({exc})", message_id=record.message_id)
        return None


def _count(outcome: str) -> str:
    metrics.add_metric(name=f"Message_{outcome.replace('-', '_')}", unit=MetricUnit.Count, value=1)
    return outcome


def record_handler(record: Any, lambda_context: Any = None) -> str:
    jobs = get_jobs()
    body = _body(record, jobs)
    if body is None:
        return _count("poison")
    receive_count = int(record.attributes.approximate_receive_count or 1)
    if isinstance(body, dict):
        logger.append_keys(run_id=body.get("run_id"), message_kind=body.get("kind", "run"))
    outcome = asyncio.run(jobs.handle(body, deadline=_deadline(lambda_context), receive_count=receive_count))
    logger.info("message handled", extra={"outcome": outcome, "receive_count": receive_count})
    return _count(outcome)


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from flowmason.kernel.settings import get_settings, use_server_defaults

    use_server_defaults("Lambda worker")  # pipelines run here: closed by default, as on the API
    receipts = [r.get("receiptHandle") for r in event.get("Records") or []]
    with Holding(get_jobs().queue, receipts, get_settings().visibility_s):
        # a processor per invocation: it holds the batch's state (and the local stack invokes from several threads)
        return process_partial_response(event=event, record_handler=record_handler,
                                        processor=BatchProcessor(event_type=EventType.SQS), context=context)


def _dead_record(record: Any) -> str:
    jobs = _state.get("dead_letter_jobs") or get_jobs()
    body = _body(record, jobs)
    if body is None:
        return "poison"
    outcome = jobs.dead_letter(body, message_id=record.message_id)
    logger.warning("dead-lettered message", extra={"run_id": body.get("run_id") if isinstance(body, dict) else None,
                                                   "outcome": outcome})
    metrics.add_metric(name="RunsDeadLettered", unit=MetricUnit.Count, value=1 if outcome == "failed" else 0)
    return outcome


@metrics.log_metrics
def dead_letter_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=_dead_record,
                                    processor=BatchProcessor(event_type=EventType.SQS), context=context)
