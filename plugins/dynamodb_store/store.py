"""The DynamoDB implementation of the storage contract (`DynamoStore`).

Single-table design: partition key ``pk`` (S), sort key ``sk`` (S); the
item's data in the map attribute ``data``; ``version`` (N); ``expires_at``
(N, epoch seconds, the table's TTL attribute). The contract only queries
one partition by sort-key range, so the table needs no secondary index yet;
a repository that needs another access path adds a GSI in
``table_definition`` and in ``template.yaml``.

How each part of the contract maps:

- conditions → ``ConditionExpression`` (``attribute_not_exists(pk)``,
  ``version = :v``); an expired item counts as absent, so every condition
  also looks at ``expires_at`` (DynamoDB's TTL deletes lazily, up to days late);
- put → ``UpdateItem`` with ``version = if_not_exists(version, 0) + 1`` so
  the new version comes back in the same request; ``if_absent`` → ``PutItem``;
- query → ``Query`` with ``BETWEEN``/``<``/``>=`` on ``sk`` (a prefix
  becomes a half-open range, as in SQLite) and a filter for expired items.
  The cursor is the last sort key returned (base64), the same on every
  backend; it comes back as ``ExclusiveStartKey``. A query keeps reading
  while the filter leaves a page short, so a page is full unless the
  partition is exhausted;
- transactions → ``TransactWriteItems``;
- ``batch_put`` and ``restore`` (import) → ``BatchWriteItem`` in groups of
  25, retrying unprocessed items with backoff. A batch write cannot compute a
  next version, so ``batch_put`` writes fresh items (version 1) on every
  backend; it is not atomic here (a failure leaves earlier groups written).
  Transactions were tried for it: they kept versions but cost twice the
  write units, and moto copies the whole table per transaction;
- reads (get, query, scan) are strongly consistent (``ConsistentRead``),
  twice the read units of eventual reads, because a resumed run must see
  the checkpoint it just wrote;
- throttling → botocore's adaptive retry mode (exponential backoff with a
  client-side rate limiter), then ``StoreUnavailableError``.

Values travel in DynamoDB's own types (the wire format is written directly:
boto3's ``TypeSerializer`` refuses Python floats). Numbers come back as int
when they have no fraction or exponent (DynamoDB normalises ``1.0`` to ``1``),
else as float; bytes as bytes.
"""
from __future__ import annotations

import math
import os
import random
import threading
import time
from typing import Any, Iterable, Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from flowmason.kernel.errors import (
    ConditionFailedError,
    ItemTooLargeError,
    StorageError,
    StoreUnavailableError,
    TransactionError,
)
from flowmason.kernel.storage import Item, Op, Page, Store
from flowmason.kernel.storage_codec import (
    UnstorableValueError,
    check_expiry,
    check_item,
    check_keys,
    check_restored,
    check_unicode,
    condition_failed,
    decode_cursor,
    encode_cursor,
    page_bounds,
    op_problem,
    transaction_error,
    validate_ops,
)

_NAMES = {"#d": "data", "#v": "version", "#e": "expires_at"}
_LIVE = "(attribute_not_exists(#e) OR #e > :now)"
_ABSENT = "(attribute_not_exists(pk) OR #e <= :now)"
_THROTTLED = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
}
_DENIED = {"AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException", "InvalidSignatureException"}


# -- values: Python <-> DynamoDB wire format --


def to_attr(value: Any) -> dict[str, Any]:
    t = type(value)
    if t is str:
        return {"S": value}
    if t is bool:
        return {"BOOL": value}
    if t is int:
        return {"N": str(value)}
    if t is float:
        if not math.isfinite(value):
            raise UnstorableValueError(f"DynamoDB cannot store the number {value!r}", hint="store it as a string")
        return {"N": repr(value)}
    if value is None:
        return {"NULL": True}
    if isinstance(value, dict):
        return {"M": {str(k): to_attr(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [to_attr(v) for v in value]}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"B": bytes(value)}
    if isinstance(value, (int, float)):  # int/float subclasses (enums, numpy scalars that subclass)
        return to_attr(int(value) if isinstance(value, int) else float(value))
    raise UnstorableValueError(f"value of type {type(value).__name__} cannot be stored")


def from_attr(attr: dict[str, Any]) -> Any:
    (kind, value), = attr.items()
    if kind == "S":
        return value
    if kind == "N":
        return float(value) if any(c in value for c in ".eE") else int(value)
    if kind == "M":
        return {k: from_attr(v) for k, v in value.items()}
    if kind == "L":
        return [from_attr(v) for v in value]
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "B":
        return bytes(value)
    if kind in ("SS", "BS"):
        return list(value)
    if kind == "NS":
        return [from_attr({"N": v}) for v in value]
    raise StorageError(f"unknown DynamoDB attribute type {kind!r}")


def _item(raw: dict[str, Any]) -> Item:
    expires = raw.get("expires_at")
    return Item(
        pk=raw["pk"]["S"],
        sk=raw["sk"]["S"],
        data=from_attr(raw["data"]) if "data" in raw else {},
        version=int(raw["version"]["N"]) if "version" in raw else 1,
        expires_at=from_attr(expires) if expires else None,
    )


def _live(raw: dict[str, Any], now: float) -> bool:
    expires = raw.get("expires_at")
    return expires is None or float(expires["N"]) > now


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def table_definition(table: str) -> dict[str, Any]:
    """``CreateTable`` arguments for a FlowMason table (on-demand capacity)."""
    return {
        "TableName": table,
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()


def make_client(*, region: str | None = None, endpoint_url: str | None = None, attempts: int = 10) -> Any:
    """A low-level DynamoDB client with adaptive retries (backoff on throttling), shared (``shared_client``)."""
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return shared_client("dynamodb", region=region, endpoint_url=endpoint_url, attempts=attempts, read_timeout=20)


def shared_client(service: str, *, region: str, endpoint_url: str | None, attempts: int, read_timeout: int,
                  **config: Any) -> Any:
    """A boto3 client of ``service`` with adaptive retries, one per process, region, endpoint and credentials.

    Making one loads botocore's service model (~50-100 ms), and a client is
    thread-safe. The process id is part of the key so a forked child never
    reuses its parent's connection pool; the credentials in the environment
    too, so a process that switches them (the local stack's roles) gets new
    clients.
    """
    key = (os.getpid(), service, region, endpoint_url, attempts, os.environ.get("AWS_ACCESS_KEY_ID"))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            options = Config(
                retries={"total_max_attempts": attempts, "mode": "adaptive"},  # total tries, first included
                connect_timeout=5,
                read_timeout=read_timeout,
                max_pool_connections=50,  # several threads share one client
                **config,
            )
            client = _clients[key] = boto3.session.Session().client(
                service, region_name=region, endpoint_url=endpoint_url, config=options)
        return client


def create_table(client: Any, table: str, *, wait: float = 60.0) -> bool:
    """Create the table (if missing) and turn on TTL for ``expires_at``; True if it was created."""
    created = True
    try:
        client.create_table(**table_definition(table))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise _error(exc, table) from exc
        created = False
    deadline = time.monotonic() + wait
    while True:
        try:
            status = client.describe_table(TableName=table)["Table"]["TableStatus"]
        except ClientError as exc:
            raise _error(exc, table) from exc
        if status == "ACTIVE":
            break
        if time.monotonic() > deadline:
            raise StoreUnavailableError(f"DynamoDB table {table} is still {status} after {wait:g}s", hint="retry later")
        time.sleep(0.5)
    ttl = client.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        client.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
    return created


def _error(exc: Exception, table: str) -> StorageError:
    """Translate a boto error into one that says what happened and what to do."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code, msg = err.get("Code", ""), err.get("Message", str(exc))
        if code == "ConditionalCheckFailedException":
            return ConditionFailedError(f"condition failed on table {table}: {msg}")
        if code == "ResourceNotFoundException":
            return StoreUnavailableError(
                f"DynamoDB table {table} does not exist ({msg})",
                hint="deploy template.yaml, or add create=1 to the store URL to create it",
            )
        if code in _THROTTLED:
            return StoreUnavailableError(
                f"DynamoDB table {table} is throttling requests and retries ran out ({code})",
                hint="switch the table to on-demand capacity or raise its provisioned capacity, then retry",
            )
        if code in _DENIED:
            return StoreUnavailableError(
                f"access to DynamoDB table {table} refused ({code}: {msg})",
                hint="check AWS credentials and that the role may read and write this table",
            )
        if code == "ValidationException" and "size" in msg.lower():
            return ItemTooLargeError(f"DynamoDB refused an item on table {table}: {msg}", hint="store less per item")
        return StorageError(f"DynamoDB {code} on table {table}: {msg}")
    if isinstance(exc, NoCredentialsError):
        return StoreUnavailableError(
            "no AWS credentials found for DynamoDB",
            hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with an IAM role",
        )
    if isinstance(exc, BotoCoreError):
        return StoreUnavailableError(
            f"cannot reach DynamoDB for table {table}: {exc}", hint="check the endpoint_url/region and the network"
        )
    return StorageError(
        f"DynamoDB request on table {table} failed: {type(exc).__name__}: {exc}",
        hint="the endpoint answered something botocore could not read; check endpoint_url, or report a bug",
    )


def _set_clause(expires_at: float | None) -> tuple[str, str]:
    """(extra SET part, REMOVE part) for the expiry attribute."""
    if expires_at is None:
        return "", " REMOVE #e"
    return ", #e = :e", ""


class DynamoStore(Store):
    """Items in one DynamoDB table. See the module docstring for the mapping."""

    latest_schema_version = 1  # the item layout has one version so far

    def __init__(self, table: str, client: Any, *, url: str | None = None) -> None:
        self.table = table
        self.client = client
        self.url = url or f"dynamodb://{table}"

    def _request(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One client call; every failure becomes a StorageError except a cancelled transaction."""
        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                raise  # transact() reads the cancellation reasons
            raise _error(exc, self.table) from exc
        except Exception as exc:  # noqa: BLE001 - botocore errors, and parser crashes on odd endpoint replies
            raise _error(exc, self.table) from exc

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return self._request(operation, TableName=self.table, **kwargs)

    # -- reads --

    def get(self, pk: str, sk: str) -> Item | None:
        raw = self._call("get_item", Key=_key(pk, sk), ConsistentRead=True).get("Item")
        if raw is None or not _live(raw, time.time()):
            return None
        return _item(raw)

    def query(
        self,
        pk: str,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> Page:
        lo, hi = page_bounds(prefix, start, end, limit)
        values: dict[str, Any] = {":pk": {"S": pk}, ":now": {"N": repr(time.time())}}
        condition = "pk = :pk"
        drop = None  # BETWEEN includes its upper bound; the contract's `end` does not
        if lo is not None and hi is not None:
            if lo >= hi:
                return Page([])
            condition += " AND sk BETWEEN :lo AND :hi"
            values[":lo"], values[":hi"], drop = {"S": lo}, {"S": hi}, hi
        elif lo is not None:
            condition += " AND sk >= :lo"
            values[":lo"] = {"S": lo}
        elif hi is not None:
            condition += " AND sk < :hi"
            values[":hi"] = {"S": hi}
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": condition,
            "FilterExpression": _LIVE,
            "ExpressionAttributeNames": {"#e": "expires_at"},
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not reverse,
            "ConsistentRead": True,
        }
        if cursor is not None:
            kwargs["ExclusiveStartKey"] = _key(pk, decode_cursor(cursor))
        want = limit + 1  # one more than asked: tells whether another page exists
        rows: list[dict[str, Any]] = []
        while True:
            kwargs["Limit"] = want - len(rows)
            resp = self._call("query", **kwargs)
            rows += [r for r in resp.get("Items", ()) if r["sk"]["S"] != drop]
            last = resp.get("LastEvaluatedKey")
            if len(rows) >= want or not last:
                break
            kwargs["ExclusiveStartKey"] = last
        more = len(rows) > limit
        items = [_item(r) for r in rows[:limit]]
        return Page(items, encode_cursor(items[-1].sk) if more else None)

    def scan_all(self) -> Iterator[Item]:
        kwargs: dict[str, Any] = {"ConsistentRead": True}
        while True:
            resp = self._call("scan", **kwargs)
            now = time.time()
            for raw in resp.get("Items", ()):
                if _live(raw, now):
                    yield _item(raw)
            if not resp.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    # -- writes --

    def _put_request(
        self, pk: str, sk: str, data: dict[str, Any], if_absent: bool, if_version: int | None, expires_at: float | None
    ) -> tuple[str, dict[str, Any]]:
        """(operation, arguments without TableName) for one put, shared by put and transact."""
        check_unicode(pk, sk, check_item(pk, sk, data))  # here, not as a 500 from the endpoint after retries
        check_expiry(expires_at)
        values: dict[str, Any] = {":d": to_attr(data)}
        if expires_at is not None:
            values[":e"] = {"N": repr(float(expires_at))}
        if if_absent:
            if if_version is not None:
                raise StorageError("pass either if_absent or if_version, not both", hint="drop one condition")
            item = {"pk": {"S": pk}, "sk": {"S": sk}, "data": values[":d"], "version": {"N": "1"}}
            if expires_at is not None:
                item["expires_at"] = values[":e"]
            return "put_item", {
                "Item": item,
                "ConditionExpression": _ABSENT,
                "ExpressionAttributeNames": {"#e": "expires_at"},
                "ExpressionAttributeValues": {":now": {"N": repr(time.time())}},
            }
        set_expiry, remove = _set_clause(expires_at)
        args: dict[str, Any] = {"Key": _key(pk, sk), "ExpressionAttributeNames": _NAMES}
        if if_version is None:
            values[":zero"], values[":one"] = {"N": "0"}, {"N": "1"}
            args["UpdateExpression"] = f"SET #d = :d, #v = if_not_exists(#v, :zero) + :one{set_expiry}{remove}"
        else:
            values[":v"], values[":nv"] = {"N": str(if_version)}, {"N": str(if_version + 1)}
            values[":now"] = {"N": repr(time.time())}
            args["UpdateExpression"] = f"SET #d = :d, #v = :nv{set_expiry}{remove}"
            args["ConditionExpression"] = f"#v = :v AND {_LIVE}"
        args["ExpressionAttributeValues"] = values
        return "update_item", args

    def put(
        self,
        pk: str,
        sk: str,
        data: dict[str, Any],
        *,
        if_absent: bool = False,
        if_version: int | None = None,
        expires_at: float | None = None,
    ) -> int:
        operation, args = self._put_request(pk, sk, data, if_absent, if_version, expires_at)
        if operation == "put_item":
            try:
                self._call("put_item", **args)
            except ConditionFailedError:
                raise condition_failed(self, "put", pk, sk, True, None) from None
            return 1
        try:
            resp = self._call("update_item", ReturnValues="UPDATED_NEW", **args)
        except ConditionFailedError:
            raise condition_failed(self, "put", pk, sk, False, if_version) from None
        return int(resp["Attributes"]["version"]["N"])

    def delete(self, pk: str, sk: str, *, if_version: int | None = None) -> bool:
        now = time.time()
        args: dict[str, Any] = {"Key": _key(pk, sk), "ReturnValues": "ALL_OLD"}
        if if_version is not None:
            args["ConditionExpression"] = f"#v = :v AND {_LIVE}"
            args["ExpressionAttributeNames"] = {"#v": "version", "#e": "expires_at"}
            args["ExpressionAttributeValues"] = {":v": {"N": str(if_version)}, ":now": {"N": repr(now)}}
        try:
            old = self._call("delete_item", **args).get("Attributes")
        except ConditionFailedError:
            raise condition_failed(self, "delete", pk, sk, False, if_version) from None
        return bool(old) and _live(old, now)

    def increment(
        self, pk: str, sk: str, field: str = "n", amount: int = 1, *, expires_at: float | None = None
    ) -> int:
        check_keys(pk, sk)
        if type(amount) is not int:
            raise StorageError(f"increment amount must be an int, got {amount!r}")
        check_expiry(expires_at)
        names = {**_NAMES, "#f": field}
        for _attempt in range(10):
            now = {"N": repr(time.time())}
            values: dict[str, Any] = {":a": {"N": str(amount)}, ":zero": {"N": "0"}, ":one": {"N": "1"}, ":now": now}
            update = "SET #d.#f = if_not_exists(#d.#f, :zero) + :a, #v = #v + :one"
            if expires_at is not None:  # a live counter keeps its window; one without expiry gets this one
                update += ", #e = if_not_exists(#e, :e)"
                values[":e"] = {"N": repr(float(expires_at))}
            try:
                resp = self._call(
                    "update_item",
                    Key=_key(pk, sk),
                    UpdateExpression=update,
                    ConditionExpression=f"attribute_exists(pk) AND {_LIVE}",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                )
                return int(resp["Attributes"]["data"]["M"][field]["N"])
            except ConditionFailedError:
                pass  # absent or expired: (re)create it below
            except StorageError as exc:
                if "operand" in str(exc).lower() or "data type" in str(exc).lower():
                    raise StorageError(
                        f"cannot increment field {field!r} of (pk={pk!r}, sk={sk!r}): it is not a number",
                        hint="use a separate item for the counter",
                    ) from exc
                raise
            item = {"pk": {"S": pk}, "sk": {"S": sk}, "data": {"M": {field: {"N": str(amount)}}}, "version": {"N": "1"}}
            if expires_at is not None:
                item["expires_at"] = values[":e"]
            try:
                self._call(
                    "put_item",
                    Item=item,
                    ConditionExpression=_ABSENT,
                    ExpressionAttributeNames={"#e": "expires_at"},
                    ExpressionAttributeValues={":now": now},
                )
                return amount
            except ConditionFailedError:
                continue  # another writer created it first: increment theirs
        raise StoreUnavailableError(
            f"increment of (pk={pk!r}, sk={sk!r}) kept racing with other writers", hint="retry later"
        )

    def _transact_item(self, op: Op) -> dict[str, Any]:
        if op.kind == "put":
            operation, args = self._put_request(op.pk, op.sk, op.data or {}, op.if_absent, op.if_version, op.expires_at)
            if op.if_exists and "ConditionExpression" not in args:
                args["ConditionExpression"] = f"attribute_exists(pk) AND {_LIVE}"
                args["ExpressionAttributeValues"][":now"] = {"N": repr(time.time())}
            return {"Put" if operation == "put_item" else "Update": {"TableName": self.table, **args}}
        conditions = []
        if op.if_absent:
            conditions.append(_ABSENT)
        if op.if_version is not None:
            conditions.append(f"#v = :v AND {_LIVE}")
        if op.if_exists:
            conditions.append(f"attribute_exists(pk) AND {_LIVE}")
        if len(conditions) > 1:  # DynamoDB refuses redundant parentheses, so add them only to combine
            conditions = [f"({c})" for c in conditions]
        args: dict[str, Any] = {"TableName": self.table, "Key": _key(op.pk, op.sk)}
        if conditions:
            names = {"#e": "expires_at"}
            values: dict[str, Any] = {":now": {"N": repr(time.time())}}
            if op.if_version is not None:
                names["#v"] = "version"
                values[":v"] = {"N": str(op.if_version)}
            args.update(
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        return {"Delete" if op.kind == "delete" else "ConditionCheck": args}

    def transact(self, ops: list[Op]) -> None:
        validate_ops(ops)
        if not ops:
            return
        items = [self._transact_item(op) for op in ops]
        try:
            self._request("transact_write_items", TransactItems=items)
        except ClientError as exc:
            raise self._cancelled(ops, exc) from exc

    def _cancelled(self, ops: list[Op], exc: ClientError) -> TransactionError:
        reasons = exc.response.get("CancellationReasons") or []
        for index, reason in enumerate(reasons):
            code = reason.get("Code") or "None"
            if code == "None":
                continue
            op = ops[index]
            if code == "ConditionalCheckFailed":
                current = self.get(op.pk, op.sk)
                problem = op_problem(op, current.version if current else None) or "its condition failed"
            elif code == "TransactionConflict":
                problem = "another transaction was changing it at the same time"
            else:
                problem = f"{code}: {reason.get('Message', '')}"
            return transaction_error(index, op, problem)
        err = TransactionError(
            f"DynamoDB cancelled the transaction: {exc.response.get('Error', {}).get('Message', exc)}; nothing was written",
            hint="retry the transaction",
        )
        err.index = None  # type: ignore[attr-defined]
        return err

    def batch_put(self, items: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Blind bulk write with ``BatchWriteItem``: each item becomes a fresh item (version 1, no expiry).

        Not atomic: a failure part-way leaves the earlier batches of 25 written.
        """
        self.restore(Item(pk, sk, data, 1) for pk, sk, data in items)

    def restore(self, items: Iterable[Item]) -> int:
        """Write items exactly as given (version and expiry included): import. Not atomic past 25 items."""
        latest = {}  # a batch may not name a key twice: the last value wins
        for item in items:
            check_unicode(item.pk, item.sk, check_restored(item))
            raw = {"pk": {"S": item.pk}, "sk": {"S": item.sk}, "data": to_attr(item.data), "version": {"N": str(item.version)}}
            if item.expires_at is not None:
                raw["expires_at"] = {"N": repr(float(item.expires_at))}
            latest[(item.pk, item.sk)] = {"PutRequest": {"Item": raw}}
        puts = list(latest.values())
        for i in range(0, len(puts), 25):
            pending = {self.table: puts[i : i + 25]}
            for attempt in range(12):
                pending = self._request("batch_write_item", RequestItems=pending).get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())  # full-jitter backoff
            else:
                raise StoreUnavailableError(
                    f"DynamoDB table {self.table} kept refusing batch writes (throttled); "
                    f"{i} of {len(puts)} items were written",
                    hint="raise the table's capacity or use on-demand, then import again (it overwrites)",
                )
        return len(puts)

    # -- housekeeping --

    def schema_version(self) -> int:
        return 1  # nothing to read yet: the table's key schema is checked by migrate()

    def migrate(self) -> tuple[int, int]:
        """Check the table's key schema (and TTL); returns (from, to)."""
        table = self._call("describe_table")["Table"]
        keys = {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]}
        if keys != {"pk": "HASH", "sk": "RANGE"}:
            raise StoreUnavailableError(
                f"DynamoDB table {self.table} has keys {keys}, not pk (HASH) + sk (RANGE)",
                hint="point the store at a table made by FlowMason (template.yaml or create=1)",
            )
        create_table(self.client, self.table)  # idempotent: turns TTL on if it is off
        return 1, 1

    def info(self) -> dict[str, Any]:
        table = self._call("describe_table")["Table"]
        return {
            "backend": "dynamodb",
            "url": self.url,
            "table": self.table,
            "region": self.client.meta.region_name,
            "endpoint": self.client.meta.endpoint_url,
            "status": table.get("TableStatus"),
            # DynamoDB refreshes these about every six hours
            "size_bytes": table.get("TableSizeBytes"),
            "items": table.get("ItemCount"),
            "schema_version": self.schema_version(),
        }
