"""Whole values in answers that stay within Lambda's 6 MB response limit.

A run's inputs and output and a stage's input, output and error are
answered whole. A value kept in the blob store (over the 400 KB item
limit) is put inline while the answer's values stay under
``RESPONSE_VALUE_BYTES`` (4 MB, the same on every host, so clients see one
shape on a laptop and on Lambda); past that the field is ``null`` and
``value_links`` says where the value is::

    "value_links": {"output": {"href": "/runs/R/values/output", "size_bytes": 9000012}}

The value endpoints (``/runs/{id}/values/{field}``,
``/runs/{id}/stages/{stage}/values/{field}``) answer the value's JSON
itself: from the store when it is small or the host can answer large
bodies (``fm serve``), else (a blob store that hands out links, S3) with a
``307`` redirect to a download URL valid for five minutes, which the
function's 6 MB limit does not apply to.

``GET /runs/{id}/stages`` is paginated (``limit``, ``cursor``) in stage id
order, then iteration; a page also ends early once its values reach the
budget, and its ``cursor`` continues after the last stage it holds.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from flowmason.kernel.errors import StorageError
from flowmason.kernel.storage_codec import decode_cursor, encode_cursor

from .app import ApiError

RESPONSE_VALUE_BYTES = 4 * 1024 * 1024
_RUN_FIELDS = ("inputs", "output", "error")
_STAGE_FIELDS = ("input", "output", "error")
_LINK_EXPIRES_S = 300


def _svc(request: Request) -> Any:
    return request.app.state.fm


class Budget:
    """What is left of one answer's value bytes."""

    def __init__(self, total: int = RESPONSE_VALUE_BYTES) -> None:
        self.left = total

    def take(self, size: int) -> bool:
        if size > self.left:
            return False
        self.left -= size
        return True


def fill(repo: Any, body: dict[str, Any], refs: dict[str, dict[str, Any]], href: str, budget: Budget,
         where: str) -> dict[str, Any]:
    """``body`` with its blob-held values inline while the budget lasts, the rest as ``value_links``."""
    links = {}
    for name, ref in refs.items():
        size = int(ref.get("size_bytes") or 0)
        if budget.take(size):
            body[name] = json.loads(repo.read_value(ref, where=f"{where}, field '{name}'"))
        else:
            body[name] = None
            links[name] = {"href": f"{href}/values/{name}", "size_bytes": size}
    if links:
        body["value_links"] = links
    return body


def run_body(request: Request) -> dict[str, Any]:
    """The run record as ``GET /runs/{id}`` answers it."""
    repo = _svc(request).runs(request.state.identity)
    run_id = request.path_params["run_id"]
    run, refs = repo.run_and_refs(run_id)
    return fill(repo, run.model_dump(mode="json"), refs, f"/runs/{run.id}", Budget(), f"run '{run_id}'")


def result_body(request: Request) -> tuple[dict[str, Any], Any]:
    """``GET /runs/{id}/result``: the run's output and error (whole, or linked past the budget), and the run."""
    repo = _svc(request).runs(request.state.identity)
    run_id = request.path_params["run_id"]
    run, refs = repo.run_and_refs(run_id)
    body = {"run_id": run.id, "status": run.status.value, "output": run.output, "error": run.error}
    wanted = {k: v for k, v in refs.items() if k in ("output", "error")}
    return fill(repo, body, wanted, f"/runs/{run.id}", Budget(), f"run '{run_id}'"), run


def stage_page(request: Request, limit: int, cursor: str | None) -> dict[str, Any]:
    repo = _svc(request).runs(request.state.identity)
    run_id = request.path_params["run_id"]
    repo.run_and_refs(run_id)  # an unknown run is a 404, not an empty list (its large values are not read)
    if cursor is not None:
        try:
            after = decode_cursor(cursor)
        except StorageError:
            after = ""
        if not after.startswith("stage#"):
            raise ApiError(422, "validation", "'cursor' is not a cursor of this listing", field="cursor",
                           hint="pass back the 'cursor' of the previous page unchanged")
    rows, next_cursor = repo.stage_page(run_id, limit=limit, cursor=cursor)
    budget = Budget()
    items: list[dict[str, Any]] = []
    for index, (_, result, refs) in enumerate(rows):
        body = result.model_dump(mode="json")
        size = len(json.dumps(body, default=str).encode())
        if items and size > budget.left:
            next_cursor = encode_cursor(rows[index - 1][0])  # the rest on the next page
            break
        budget.left = max(0, budget.left - size)
        fill(repo, body, refs, f"/runs/{run_id}/stages/{result.stage_id}", budget,
             f"run '{run_id}', stage '{result.stage_id}'")
        if result.iteration is not None:
            for link in body.get("value_links", {}).values():
                link["href"] += f"?iteration={quote(result.iteration, safe='')}"
        items.append(body)
    return {"items": items, "cursor": next_cursor}


def _answer(repo: Any, value: Any, ref: dict[str, Any] | None, where: str) -> Response:
    if ref is None:  # kept in the item: small
        return Response(json.dumps(value, default=str), media_type="application/json")
    if int(ref.get("size_bytes") or 0) > RESPONSE_VALUE_BYTES:
        link = repo.value_link(ref, expires_s=_LINK_EXPIRES_S)
        if link is not None:
            return RedirectResponse(link, status_code=307)
    return Response(repo.read_value(ref, where=where), media_type="application/json")


def _field(request: Request, allowed: tuple[str, ...]) -> str:
    name = request.path_params["field"]
    if name not in allowed:
        raise ApiError(404, "not_found", f"no value '{name}' here", field="field", hint="one of " + ", ".join(allowed))
    return name


def run_value(request: Request) -> Response:
    """One value of a run (``inputs``, ``output``, ``error``), whole: its JSON, or a 307 to a download URL."""
    name = _field(request, _RUN_FIELDS)
    repo = _svc(request).runs(request.state.identity)
    run_id = request.path_params["run_id"]
    run, refs = repo.run_and_refs(run_id)
    return _answer(repo, getattr(run, name), refs.get(name), f"run '{run_id}', field '{name}'")


def stage_value(request: Request) -> Response:
    """One value of a stage result (``input``, ``output``, ``error``; ``?iteration=`` for a loop body's)."""
    name = _field(request, _STAGE_FIELDS)
    repo = _svc(request).runs(request.state.identity)
    run_id, stage_id = request.path_params["run_id"], request.path_params["stage_id"]
    iteration = request.query_params.get("iteration") or None
    result, refs = repo.stage_record(run_id, stage_id, iteration)
    return _answer(repo, getattr(result, name), refs.get(name), f"run '{run_id}', stage '{stage_id}', field '{name}'")
