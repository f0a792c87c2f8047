"""HTTP route: ``GET /runs/{run_id}/export?format=html|json|markdown|mermaid|svg`` (the caller's tenant)."""
from __future__ import annotations

from typing import Any

MEDIA = {"html": "text/html; charset=utf-8", "json": "application/json", "markdown": "text/markdown; charset=utf-8",
         "mermaid": "text/plain; charset=utf-8", "svg": "image/svg+xml"}


def export(request: Any) -> Any:
    from starlette.responses import Response

    from flowmason.kernel.errors import FlowMasonError
    from flowmason.kernel.plugins import get_registry

    from .exporters import load_run

    fmt = request.query_params.get("format", "html")
    exporters = get_registry().exporters
    fn = exporters.get(fmt)
    if fn is None:
        err = FlowMasonError(f"unknown export format '{fmt}'", field="format", hint=f"use one of: {', '.join(sorted(exporters))}")
        err.code = "validation"
        raise err
    repo = request.app.state.fm.runs(request.state.identity)
    run, stages, pipeline = load_run(repo, request.path_params["run_id"])
    body = fn(run, stages, pipeline)
    return Response(body, media_type=MEDIA.get(fmt, "application/octet-stream"))


def register_routes(register: Any) -> None:
    register("GET", "/runs/{run_id}/export", export, name="run_export", auth="read",
             summary="Export a run: animated HTML page, JSON frames, Markdown, Mermaid or SVG (?format=)",
             tags=["runs"])
