"""The run exporters registered through ``fm_register_exporters``.

Each is ``export(run, stages, pipeline) -> str`` (``pipeline`` may be None:
the graph then has no edges). ``load_run`` gathers those three for a run id,
taking the pipeline definition from a file or, when time travel recorded
it, from the store through timetravel's public read API. Time travel is
optional here (``USES`` in ``__init__``): without it in the process, a run
exported without ``--pipeline`` just has no edges.
"""
from __future__ import annotations

from typing import Any

from .frames import tracks_from_results
from .html import html_page
from .render import json_export, markdown, mermaid, svg


def export_json(run: Any, stages: list[Any], pipeline: Any = None) -> str:
    return json_export(tracks_from_results(run, stages, pipeline), run, stages)


def export_html(run: Any, stages: list[Any], pipeline: Any = None) -> str:
    return html_page(tracks_from_results(run, stages, pipeline))


def export_markdown(run: Any, stages: list[Any], pipeline: Any = None) -> str:
    return markdown(tracks_from_results(run, stages, pipeline), run, stages)


def export_mermaid(run: Any, stages: list[Any], pipeline: Any = None) -> str:
    return mermaid(tracks_from_results(run, stages, pipeline))


def export_svg(run: Any, stages: list[Any], pipeline: Any = None) -> str:
    return svg(tracks_from_results(run, stages, pipeline))


EXPORTERS = {"json": export_json, "html": export_html, "markdown": export_markdown, "mermaid": export_mermaid,
             "svg": export_svg}
SUFFIXES = {"json": ".json", "html": ".html", "markdown": ".md", "mermaid": ".mmd", "svg": ".svg"}


def recorded_pipeline(repo: Any, run_id: str) -> Any:
    """The pipeline definition time travel stored with the run, or None (time travel not loaded here)."""
    from flowmason.kernel.plugins import get_plugin_manager

    if not get_plugin_manager().has_plugin("timetravel"):
        return None
    from flowmason.plugins.timetravel import recorded_pipeline as stored

    return stored(repo, run_id)


def load_run(repo: Any, run_ref: str, pipeline_path: Any = None) -> tuple[Any, list[Any], Any]:
    run = repo.find_run(run_ref)
    stages = repo.stage_results(run.id)
    if pipeline_path is not None:
        from flowmason.kernel.model import load_pipeline

        pipeline = load_pipeline(pipeline_path)
    else:
        pipeline = recorded_pipeline(repo, run.id)
    return run, stages, pipeline
