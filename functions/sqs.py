"""The run queue on Amazon SQS (the durable engine's ``Queue``), used by the API and the worker.

boto3 is imported when the first queue is made, not when this module is.
The endpoint comes from ``endpoint_url`` or boto3's own
``AWS_ENDPOINT_URL_SQS``/``AWS_ENDPOINT_URL`` variables (the local stack).
"""
from __future__ import annotations

import json
import os
from typing import Any

from flowmason.kernel.errors import StoreUnavailableError

MAX_DELAY_S = 900  # SQS's limit for DelaySeconds


def sqs_client(*, endpoint_url: str | None = None, region: str | None = None, session: Any = None) -> Any:
    import boto3
    from botocore.config import Config

    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return (session or boto3.session.Session()).client("sqs", region_name=region, endpoint_url=endpoint_url,
                                                       config=Config(retries={"max_attempts": 8, "mode": "adaptive"}))


class SqsQueue:
    def __init__(self, url: str, client: Any = None) -> None:
        self.url = url
        self._client = client

    @property
    def client(self) -> Any:
        # made on first send: the API's cold start should not pay for boto3 before a request needs it
        if self._client is None:
            self._client = sqs_client()
        return self._client

    def send(self, body: dict[str, Any], *, delay_s: int = 0) -> None:
        self.client.send_message(QueueUrl=self.url, MessageBody=json.dumps(body),
                                 DelaySeconds=max(0, min(MAX_DELAY_S, int(delay_s))))

    def send_many(self, bodies: list[dict[str, Any]]) -> None:
        for start in range(0, len(bodies), 10):  # SQS batches hold at most 10 messages
            entries = [{"Id": str(i), "MessageBody": json.dumps(b)} for i, b in enumerate(bodies[start:start + 10])]
            for _ in range(5):
                failed = self.client.send_message_batch(QueueUrl=self.url, Entries=entries).get("Failed") or []
                if not failed:
                    break
                ids = {f["Id"] for f in failed}
                entries = [e for e in entries if e["Id"] in ids]
            else:
                raise StoreUnavailableError(f"SQS refused {len(entries)} message(s) after 5 tries",
                                            hint="check the queue and its permissions")

    def extend(self, receipts: list[str], seconds: int) -> int:
        """Keep the messages with these receipt handles invisible ``seconds`` from now; returns how many took it.

        A message already deleted or redelivered elsewhere refuses (its handle
        is stale): that is reported in the count, not raised.
        """
        changed = 0
        for start in range(0, len(receipts), 10):
            entries = [{"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": int(seconds)}
                       for i, r in enumerate(receipts[start:start + 10])]
            got = self.client.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)
            changed += len(got.get("Successful") or [])
        return changed
