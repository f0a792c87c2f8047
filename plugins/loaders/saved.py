"""Stored pipelines and their versions, on the storage contract.

The HTTP API (and anything else that shares pipelines) keeps every version
a user saved; a run pins the exact version it ran. Item layout:

    pk = "{ns}pipeline#{id}"   sk = "meta"          latest version number, name, timestamps
    pk = "{ns}pipeline#{id}"   sk = "v#{000042}"    one saved version: the whole definition (in the
                                                    blob store when it is over the item limit)
    pk = "{ns}pipelines"       sk = "{id}"          listing entry (id order)

Version numbers are integers counted by the store (1, 2, 3...); a
pipeline's own ``version`` string (semver in the file) is kept as
``label``. A new version is written with the meta item in one transaction
guarded by the meta item's version, so two writers racing for version N+1
cannot both win: the loser gets ``ConflictError`` and retries.
``ns`` is the tenant namespace ("" on a laptop, "org#ID#" on the server).
"""
from __future__ import annotations

import re
import time
from typing import Any

from flowmason.kernel import blobs
from flowmason.kernel.errors import (
    ConditionFailedError,
    FlowMasonError,
    InputError,
    ItemTooLargeError,
    NotFoundError,
    TransactionError,
)
from flowmason.kernel.model import Pipeline, parse_pipeline
from flowmason.kernel.storage import Op, Store

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SUMMARY = ("id", "name", "description", "latest_version", "label", "created_at", "updated_at", "created_by")


class ConflictError(FlowMasonError):
    """A write lost a race or would replace something that already exists."""

    code = "conflict"


def _vkey(number: int) -> str:
    return f"v#{number:06d}"


def pipeline_id_of(pipeline: Pipeline) -> str:
    """The id a pipeline is stored under: its ``id``, else a slug of its name."""
    raw = pipeline.id or re.sub(r"[^A-Za-z0-9._-]+", "-", pipeline.name).strip("-._")
    if not _ID.match(raw or ""):
        raise InputError(
            f"'{raw}' cannot be used as a pipeline id",
            pipeline=pipeline.name, field="id",
            hint="give the pipeline an 'id' of letters, digits, '.', '_' or '-' (at most 128 characters)",
        )
    return raw


class PipelineRepository:
    """Saves pipeline definitions as numbered versions and reads them back."""

    def __init__(self, store: Store, namespace: str = "") -> None:
        self.store = store
        self.ns = namespace

    def _pk(self, pipeline_id: str) -> str:
        return f"{self.ns}pipeline#{pipeline_id}"

    # -- writing --
    def create(self, definition: dict[str, Any], *, created_by: str | None = None) -> dict[str, Any]:
        """Save a new pipeline as version 1; ConflictError if the id is taken."""
        pipeline = parse_pipeline(definition)
        pid = pipeline_id_of(pipeline)
        return self._write(pid, pipeline, definition, number=1, meta_version=None, created_by=created_by)

    def add_version(self, pipeline_id: str, definition: dict[str, Any], *, created_by: str | None = None) -> dict[str, Any]:
        """Save ``definition`` as the next version of an existing pipeline."""
        meta = self.store.get(self._pk(pipeline_id), "meta")
        if meta is None:
            raise self._missing(pipeline_id)
        pipeline = parse_pipeline(definition)
        if pipeline.id and pipeline.id != pipeline_id:
            raise ConflictError(
                f"the definition's id '{pipeline.id}' is not '{pipeline_id}'",
                pipeline=pipeline_id, field="id", hint="drop the id from the body or make it match the URL",
            )
        definition = {**definition, "id": pipeline_id}
        number = int(meta.data["latest_version"]) + 1
        return self._write(pipeline_id, pipeline, definition, number=number, meta_version=meta.version,
                           created_by=created_by, created_at=meta.data.get("created_at"))

    def _write(self, pid: str, pipeline: Pipeline, definition: dict[str, Any], *, number: int,
               meta_version: int | None, created_by: str | None, created_at: float | None = None) -> dict[str, Any]:
        now = time.time()
        definition = {**definition, "id": pid}
        meta = {
            "id": pid, "name": pipeline.name, "description": pipeline.description, "latest_version": number,
            "label": pipeline.version, "created_at": created_at or now, "updated_at": now, "created_by": created_by,
        }
        version = {"id": pid, "version": number, "label": pipeline.version, "definition": definition,
                   "created_at": now, "created_by": created_by}
        ops = [
            Op("put", self._pk(pid), "meta", meta, if_absent=meta_version is None, if_version=meta_version),
            Op("put", self._pk(pid), _vkey(number), version, if_absent=True),
            Op("put", f"{self.ns}pipelines", pid, {k: meta.get(k) for k in _SUMMARY}),
        ]
        try:
            try:
                self.store.transact(ops)
            except ItemTooLargeError:  # a large definition is kept whole in the blob store (kernel.blobs)
                ops[1] = Op("put", self._pk(pid), _vkey(number), blobs.pack(
                    self.store, self.ns, version, ("definition",), where=f"pipeline '{pid}' version {number}"),
                    if_absent=True)
                self.store.transact(ops)
        except (TransactionError, ConditionFailedError):
            if meta_version is None:
                raise ConflictError(
                    f"a pipeline with id '{pid}' already exists", pipeline=pid, field="id",
                    hint=f"save a new version with POST /pipelines/{pid}/versions, or choose another id",
                ) from None
            raise ConflictError(
                f"pipeline '{pid}' changed while saving version {number}", pipeline=pid,
                hint="read the latest version and save again",
            ) from None
        return {**meta, "version": number, "definition": definition}

    # -- reading --
    def _missing(self, pipeline_id: str) -> NotFoundError:
        return NotFoundError(f"no pipeline with id '{pipeline_id}'", pipeline=pipeline_id, field="pipeline_id",
                             hint="GET /pipelines lists the saved pipelines")

    def get(self, pipeline_id: str, version: int | None = None) -> dict[str, Any]:
        """The meta fields plus ``version`` and ``definition`` (latest unless ``version`` is given)."""
        meta = self.store.get(self._pk(pipeline_id), "meta")
        if meta is None:
            raise self._missing(pipeline_id)
        number = int(version) if version is not None else int(meta.data["latest_version"])
        item = self.store.get(self._pk(pipeline_id), _vkey(number))
        if item is None:
            raise NotFoundError(
                f"pipeline '{pipeline_id}' has no version {number}", pipeline=pipeline_id, field="version",
                hint=f"versions run from 1 to {meta.data['latest_version']}",
            )
        data = blobs.unpack(self.store, item.data, where=f"pipeline '{pipeline_id}' version {number}")
        return {**meta.data, "version": number, "label": data.get("label"), "definition": data["definition"]}

    def load(self, pipeline_id: str, version: int | None = None) -> tuple[Pipeline, int]:
        """The parsed pipeline and the version number it came from."""
        record = self.get(pipeline_id, version)
        return parse_pipeline(record["definition"], source=pipeline_id), record["version"]

    def versions(self, pipeline_id: str, *, limit: int = 50, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first, without definitions."""
        if self.store.get(self._pk(pipeline_id), "meta") is None:
            raise self._missing(pipeline_id)
        page = self.store.query(self._pk(pipeline_id), prefix="v#", limit=limit, cursor=cursor, reverse=True)
        out = [{k: v for k, v in i.data.items() if k != "definition"} for i in page.items]
        return out, page.cursor

    def list(self, *, limit: int = 50, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        page = self.store.query(f"{self.ns}pipelines", limit=limit, cursor=cursor)
        return [i.data for i in page.items], page.cursor
