"""HTTP route: ``GET /runs/{run_id}/diff-output/{other}?stage=X&field=output&key=&format=json|html|text``.

``other`` is another run id, or ``RUN_ID@SEQ`` for a snapshot; ``run_id``
may be ``RUN_ID@SEQ`` too.
"""
from __future__ import annotations

from typing import Any


def diff_output(request: Any) -> Any:
    from starlette.responses import HTMLResponse, PlainTextResponse

    from flowmason.kernel.errors import FlowMasonError

    from .diff import diff_values, render_html, render_text
    from .sources import side_value

    q = request.query_params
    stage = q.get("stage")
    fmt = q.get("format", "json")
    if not stage or fmt not in ("json", "html", "text"):
        err = FlowMasonError("give ?stage=STAGE_ID and ?format=json|html|text", field="stage" if not stage else "format",
                             hint="e.g. ?stage=draft&field=output&format=html")
        err.code = "validation"
        raise err
    repo = request.app.state.fm.runs(request.state.identity)
    va, la = side_value(repo, request.path_params["run_id"], stage, q.get("field", "output"), q.get("key") or None)
    vb, lb = side_value(repo, request.path_params["other"], stage, q.get("field", "output"), q.get("key") or None)
    diff = diff_values(va, vb)
    if fmt == "html":
        return HTMLResponse(render_html(diff, title=f"{la} → {lb}", page=True))
    if fmt == "text":
        return PlainTextResponse(f"--- {la}\n+++ {lb}\n{render_text(diff)}\n")
    return {"a": la, "b": lb, "changed": diff.changed, **diff.to_dict()}


def register_routes(register: Any) -> None:
    register("GET", "/runs/{run_id}/diff-output/{other}", diff_output, name="run_diff_output", auth="read",
             summary="Word-level diff of a stage's prompt, input or output between two runs or snapshots",
             tags=["runs"], query=[
                 {"name": "stage", "in": "query", "required": True, "description": "the stage to compare",
                  "schema": {"type": "string", "minLength": 1}},
                 {"name": "field", "in": "query", "required": False, "description": "what to compare",
                  "schema": {"type": "string", "default": "output"}},
                 {"name": "key", "in": "query", "required": False, "description": "a key inside the field",
                  "schema": {"type": "string"}},
                 {"name": "format", "in": "query", "required": False, "description": "answer format",
                  "schema": {"type": "string", "enum": ["json", "html", "text"], "default": "json"}},
             ])
