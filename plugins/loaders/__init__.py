"""Saved pipelines and the reference schemes that find them: ``file://PATH`` and ``store://ID[@VERSION]``.

``saved.PipelineRepository`` keeps every version a user saves (the HTTP
API's pipelines, the parents and sub-pipelines stored runs refer to);
``fm_register_loaders`` gives the runner the two schemes. A plain
reference (no scheme) is tried by the runner as a file path first, then
with the ``store`` loader, so ``extends: "base"`` finds a base saved
through the API as well as ``base.pipeline.json`` beside the file. (This
was ``kernel/pipelines.py``: only the API, stored runs and this loader use
saved pipelines, so they are a plugin's, not every process's.)
"""
from __future__ import annotations

from typing import Any

from flowmason.kernel.plugins import hookimpl

from .saved import ConflictError, PipelineRepository, pipeline_id_of

__all__ = ["ConflictError", "PipelineRepository", "load_file", "load_stored", "pipeline_id_of"]


def load_file(ref: str, origin: Any) -> Any:
    from flowmason.kernel.errors import NotFoundError
    from flowmason.kernel.model import load_pipeline

    path = origin.file(ref)
    if path is None:
        where = f"in {origin.base}" if origin.files else "here: this server does not read pipeline files"
        raise NotFoundError(f"no pipeline file '{ref}' {where}", field="pipeline_id")
    return load_pipeline(path)


def load_stored(ref: str, origin: Any) -> Any:
    """``ID`` (latest version) or ``ID@N`` from the pipelines saved in the store, in the caller's tenant."""
    from flowmason.kernel.errors import NotFoundError

    if origin.store is None:
        raise NotFoundError(f"no store to load pipeline '{ref}' from", field="pipeline_id")
    pid, _, version = ref.partition("@")
    number = None
    if version:
        if not version.isdigit():
            raise NotFoundError(f"'{ref}': a stored pipeline's version is a number (ID@3)", field="pipeline_id")
        number = int(version)
    return PipelineRepository(origin.store, origin.namespace).load(pid, number)[0]


@hookimpl
def fm_register_loaders(register):
    register("file", load_file)
    register("store", load_stored)
