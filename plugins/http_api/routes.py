"""The pipelines and runs routes, contributed through ``fm_register_routes`` like any plugin's.

Endpoints are plain functions of the request; the app wrapper has already
set ``request.state.identity`` and, for routes with a request model,
``request.state.body`` (the validated model) and ``request.state.json``
(the raw object). Store work is synchronous, so these run in starlette's
thread pool; only the event stream is async.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any, AsyncIterator

from starlette.requests import Request
from starlette.responses import StreamingResponse

from flowmason.kernel.errors import FlowMasonError, PipelineValidationError
from flowmason.kernel.model import RunStatus, parse_pipeline

from . import values
from .app import ApiError, query_param
from .schemas import (
    PipelineDoc,
    PipelineIn,
    PipelineList,
    PipelineOut,
    RunIn,
    RunList,
    RunOut,
    RunResult,
    StagePage,
    ValidationOut,
)

# On Lambda the API Gateway answer is buffered and cut at 29 s: end the stream before that
# there (clients reconnect or poll /runs/{id}); locally a stream may follow a run for 15 minutes.


def _sse_max_s() -> float:
    """FM_SSE_MAX_SECONDS, else 25 s on Lambda (API Gateway cuts at 29 s) and 15 minutes elsewhere."""
    from flowmason.kernel.settings import get_settings

    configured = get_settings().sse_max_seconds
    if configured is not None:
        return configured
    return 25.0 if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") else 900.0
_TERMINAL = {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}


def _svc(request: Request) -> Any:
    return request.app.state.fm


def _subject(request: Request) -> str | None:
    return (request.state.identity or {}).get("subject")


def _int_param(request: Request, name: str, default: int | None, *, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ApiError(422, "validation", f"'{name}' must be a whole number from {low} to {high}", field=name)
    return value


def _page(request: Request) -> tuple[int, str | None]:
    return _int_param(request, "limit", 50, low=1, high=200) or 50, request.query_params.get("cursor") or None


def _runner(request: Request) -> Any:
    """The runner for this tenant: references (``extends``, sub-pipelines) load from its saved pipelines."""
    from flowmason.kernel.runner import Runner
    from flowmason.kernel.runs import namespace

    svc = _svc(request)
    return Runner(store=svc.store, namespace=namespace(svc.org(request.state.identity)), files=False)


def _resolve(request: Request, definition: dict[str, Any]) -> Any:
    """Load, resolve and check a submitted definition (an abstract base is valid: pipelines extend it)."""
    runner = _runner(request)
    pipeline, loader = runner.load(parse_pipeline(definition))
    runner.validate(pipeline, loader)  # sub-pipelines too: they must be saved first
    return pipeline


# -- pipelines --


def create_pipeline(request: Request) -> Any:
    definition = request.state.json
    _resolve(request, definition)
    return 201, _svc(request).pipelines(request.state.identity).create(definition, created_by=_subject(request))


def add_version(request: Request) -> Any:
    definition = request.state.json
    pid = request.path_params["pipeline_id"]
    _resolve(request, {**definition, "id": pid})
    return 201, _svc(request).pipelines(request.state.identity).add_version(pid, definition, created_by=_subject(request))


def list_pipelines(request: Request) -> Any:
    limit, cursor = _page(request)
    items, cursor = _svc(request).pipelines(request.state.identity).list(limit=limit, cursor=cursor)
    return {"items": items, "cursor": cursor}


def get_pipeline(request: Request) -> Any:
    version = _int_param(request, "version", None, low=1, high=10**9)
    return _svc(request).pipelines(request.state.identity).get(request.path_params["pipeline_id"], version)


def list_versions(request: Request) -> Any:
    limit, cursor = _page(request)
    repo = _svc(request).pipelines(request.state.identity)
    items, cursor = repo.versions(request.path_params["pipeline_id"], limit=limit, cursor=cursor)
    return {"items": items, "cursor": cursor}


def validate_pipeline(request: Request) -> Any:
    """Problems are the answer here, not an error: 200 with ``valid`` false."""
    problems: list[dict[str, Any]] = []
    stages = 0
    try:
        stages = len(parse_pipeline(request.state.json).stages)
        stages = len(_resolve(request, request.state.json).stages)
    except PipelineValidationError as exc:
        problems = [p.to_dict() for p in exc.problems]
    except FlowMasonError as exc:
        problems = [exc.to_dict()]
    return {"valid": not problems, "problems": problems, "stages": stages}


# -- runs --


def start_run(request: Request) -> Any:
    from flowmason.plugins.durable import create_run, run_message

    body: RunIn = request.state.body
    svc = _svc(request)
    identity = request.state.identity
    version = None  # RunIn holds exactly one of pipeline_id and pipeline
    if body.pipeline_id is not None:
        record = svc.pipelines(identity).get(body.pipeline_id, body.version)
        definition, version = record["definition"], record["version"]
    else:
        definition = request.state.json["pipeline"]  # as sent: the model checked its shape only
    runner = _runner(request)
    pipeline, _ = runner.load(parse_pipeline(definition))
    runner.compile(pipeline)
    if pipeline.extends is None and definition.get("extends"):
        # the run keeps the exact pipeline it runs: the resolved one, not a reference to a parent that may change
        definition = pipeline.model_dump(mode="json", exclude_none=True)
    org = svc.org(identity)
    run = create_run(svc.store, org, pipeline, definition, body.inputs, version=version, created_by=_subject(request))
    try:
        svc.queue.send(run_message(org, run.id))
    except Exception as exc:
        # a run nobody will ever pick up must not stay pending
        run.status = RunStatus.FAILED
        run.error = {"code": "enqueue_failed", "message": f"the run could not be queued: {type(exc).__name__}"}
        run.finished_at = time.time()
        svc.runs(identity).run_finished(run)
        raise ApiError(503, "store_unavailable", "the run queue is unavailable", hint="retry in a moment") from None
    return 202, run.model_dump(mode="json")


def get_run(request: Request) -> Any:
    return values.run_body(request)


def run_result(request: Request) -> Any:
    body, run = values.result_body(request)
    finished = run.status in _TERMINAL
    return (200 if finished else 202), {**body, "finished": finished}


def run_stages(request: Request) -> Any:
    limit, cursor = _page(request)
    return values.stage_page(request, limit, cursor)


def cancel_run(request: Request) -> Any:
    run = _svc(request).cancel(request.state.identity, request.path_params["run_id"])
    return 202, run.model_dump(mode="json")


def list_runs(request: Request) -> Any:
    limit, cursor = _page(request)
    status = request.query_params.get("status") or None
    if status is not None and status not in {s.value for s in RunStatus}:
        raise ApiError(422, "validation", f"unknown status '{status}'", field="status",
                       hint="one of " + ", ".join(s.value for s in RunStatus))
    items, cursor = _svc(request).runs(request.state.identity).list_runs(
        limit=limit, cursor=cursor, pipeline_id=request.query_params.get("pipeline_id") or None, status=status)
    return {"items": items, "cursor": cursor}


def _sse(event_id: int | None, event: str, data: Any) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


def _after(request: Request) -> int:
    """Where a stream resumes: ``Last-Event-ID`` (a reconnecting EventSource) wins over ``?after=``."""
    for name, raw in (("Last-Event-ID", request.headers.get("last-event-id")), ("after", request.query_params.get("after"))):
        if raw is None or raw.strip() == "":
            continue
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value < 0:
            raise ApiError(422, "validation", f"'{name}' must be an event id (a whole number from 0)", field=name,
                           hint="send back the id of the last event you received")
        return value
    return 0


class _Settled:
    """The stream of a run recorded without an event log (``fm run``, older runs): its settled stages.

    Each step reads the run and all its stage results, as the stream did
    before runs had a log. Events carry no ``id`` (there is no log to resume
    in). ``sent`` remembers what went out, so if the run turns out to have a
    log after all (its first events not yet written when the stream looked),
    the log's copies of those events are not sent twice.
    """

    def __init__(self, repo: Any, run_id: str) -> None:
        self.repo = repo
        self.run_id = run_id
        self.sent: set[tuple[Any, ...]] = set()
        self.status: Any = None

    def step(self) -> tuple[list[bytes], bool]:
        run = self.repo.get_run(self.run_id)
        out: list[bytes] = []
        if run.status is not RunStatus.PENDING:
            for r in self.repo.stage_results(self.run_id, values=False):
                key = (r.stage_id, r.iteration, r.status.value)
                if key not in self.sent:
                    self.sent.add(key)
                    out.append(_sse(None, f"stage.{r.status.value}", {
                        "run_id": self.run_id, "stage_id": r.stage_id, "iteration": r.iteration,
                        "status": r.status.value, "duration_ms": r.duration_ms, "error": r.error}))
        if run.status != self.status:
            self.status = run.status
            self.sent.add(("run", run.status.value))
            out.append(_sse(None, f"run.{run.status.value}", {"run_id": self.run_id, "status": run.status.value,
                                                              "error": run.error}))
        return out, run.status in _TERMINAL

    def repeats(self, event: Any) -> bool:
        data = event.data
        if event.event.startswith("run."):
            return ("run", data.get("status")) in self.sent
        return (data.get("stage_id"), data.get("iteration"), data.get("status")) in self.sent


def _has_plugin(name: str) -> bool:
    from flowmason.kernel.plugins import get_plugin_manager

    return get_plugin_manager().has_plugin(name)


# while a stream finds no new events it looks at the run record this often (a run ended outside its log:
# cancelled before it started, dead-lettered, or its host died)
_IDLE_CHECK_S = 2.0


async def run_events(request: Request) -> Any:
    """Server-sent events of a run from its event log: starts, logs, tokens, retries, settled stages, the end.

    ``id`` is the event's number in the run's log: reconnect with
    ``Last-Event-ID`` (or ``?after=N``) to continue without repeats; a
    client that connects late gets everything from the start. Each poll is
    one query of the events after the last one sent. Runs recorded
    without a log stream their settled stages, as before. Ends with the
    run's final status (``run.completed``, ``run.failed``,
    ``run.cancelled``) or after FM_SSE_MAX_SECONDS (``stream.timeout``);
    a client that reconnects after the end is told the final status again,
    so it knows to stop.
    """
    svc = _svc(request)
    identity = request.state.identity
    repo = svc.runs(identity)
    run_id = request.path_params["run_id"]
    await asyncio.to_thread(repo.get_run, run_id)  # unknown id: 404 before the stream starts
    raw = request.query_params.get("interval")
    try:
        interval = min(10.0, max(0.05, float(raw))) if raw else 0.5
    except ValueError:
        raise ApiError(422, "validation", "'interval' must be a number of seconds", field="interval") from None
    after = _after(request)
    # the log is read only when its plugin is loaded (USES); without it, runs stream their settled stages
    cursor = None
    if _has_plugin("events"):
        from flowmason.plugins.events import EventCursor

        cursor = EventCursor(svc.store, repo.ns, run_id, after=after)

    async def stream() -> AsyncIterator[bytes]:
        settled = _Settled(repo, run_id)
        deadline = time.monotonic() + _sse_max_s()
        checked = 0.0  # when the run record was last read
        ending = False  # the record says the run ended: one more look for its final event
        while time.monotonic() < deadline:
            events = await asyncio.to_thread(cursor.poll) if cursor is not None else []
            for ev in events:
                if settled.sent and settled.repeats(ev):
                    continue
                yield _sse(ev.seq, ev.event, ev.data)
                if ev.final:
                    return
            if cursor is None or not cursor.seen:
                chunks, finished = await asyncio.to_thread(settled.step)
                for chunk in chunks:
                    yield chunk
                if finished:
                    return
            elif not events and time.monotonic() - checked >= _IDLE_CHECK_S:
                checked = time.monotonic()
                run = await asyncio.to_thread(repo.get_run, run_id)
                if run.status in _TERMINAL:
                    if ending:  # its final event never came: say how it ended anyway
                        yield _sse(cursor.after, f"run.{run.status.value}",
                                   {"run_id": run_id, "status": run.status.value, "error": run.error})
                        return
                    ending, checked = True, 0.0
            await asyncio.sleep(interval)
        yield _sse(cursor.after if cursor is not None and cursor.seen else None, "stream.timeout",
                   {"run_id": run_id, "hint": "reconnect to keep following the run"})

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def health(request: Request) -> Any:
    return {"status": "ok"}


_PAGE_QUERY = [query_param("limit", "items per page (1-200)", type="integer", minimum=1, maximum=200),
               query_param("cursor", "the cursor of the previous page")]


def register_routes(register: Any) -> None:
    r = register
    r("GET", "/health", health, name="health", auth=None, summary="Liveness check", tags=["meta"])
    r("POST", "/pipelines", create_pipeline, name="create_pipeline", auth="write", summary="Save a new pipeline (version 1)",
      request_model=PipelineIn, response_model=PipelineOut, status_code=201, tags=["pipelines"])
    r("GET", "/pipelines", list_pipelines, name="list_pipelines", auth="read", summary="List saved pipelines",
      response_model=PipelineList, tags=["pipelines"], query=_PAGE_QUERY)
    r("POST", "/pipelines/validate", validate_pipeline, name="validate_pipeline", auth="read",
      summary="Check a pipeline without saving it", request_model=PipelineDoc, response_model=ValidationOut,
      tags=["pipelines"])
    r("GET", "/pipelines/{pipeline_id}", get_pipeline, name="get_pipeline", auth="read",
      summary="A saved pipeline (latest, or ?version=N)", response_model=PipelineOut, tags=["pipelines"],
      query=[query_param("version", "a version (default: the latest)", type="integer", minimum=1)])
    r("POST", "/pipelines/{pipeline_id}/versions", add_version, name="add_pipeline_version", auth="write",
      summary="Save a new version", request_model=PipelineIn, response_model=PipelineOut, status_code=201,
      tags=["pipelines"])
    r("GET", "/pipelines/{pipeline_id}/versions", list_versions, name="list_pipeline_versions", auth="read",
      summary="Versions of a pipeline, newest first", response_model=PipelineList, tags=["pipelines"],
      query=_PAGE_QUERY)
    r("POST", "/runs", start_run, name="start_run", auth="run", summary="Start a run (queued; 202)",
      request_model=RunIn, response_model=RunOut, status_code=202, tags=["runs"])
    r("GET", "/runs", list_runs, name="list_runs", auth="read",
      summary="Runs, newest first (?status=, ?pipeline_id=, ?limit=, ?cursor=)", response_model=RunList, tags=["runs"],
      query=[query_param("status", "only runs in this state", enum=[s.value for s in RunStatus]),
             query_param("pipeline_id", "only runs of this pipeline"), *_PAGE_QUERY])
    r("GET", "/runs/{run_id}", get_run, name="get_run", auth="read", summary="A run's status", response_model=RunOut,
      tags=["runs"])
    r("GET", "/runs/{run_id}/result", run_result, name="run_result", auth="read",
      summary="A run's output (202 while it is still going)", response_model=RunResult, tags=["runs"])
    r("GET", "/runs/{run_id}/stages", run_stages, name="run_stages", auth="read",
      summary="A run's stage results, a page at a time in stage id order (?limit=, ?cursor=); large values whole "
      "until the page holds 4 MB of them, then as value_links", response_model=StagePage, tags=["runs"],
      query=[query_param("limit", "results per page", type="integer", minimum=1, maximum=200, default=50),
             query_param("cursor", "the cursor of the previous page, unchanged (opaque)")])
    r("GET", "/runs/{run_id}/values/{field}", values.run_value, name="run_value", auth="read",
      summary="One value of a run (inputs, output, error), whole: its JSON, or 307 to a download URL when it is "
      "over 4 MB and the store hands out links (S3)", tags=["runs"])
    r("GET", "/runs/{run_id}/stages/{stage_id}/values/{field}", values.stage_value, name="stage_value", auth="read",
      summary="One value of a stage result (input, output, error), whole: its JSON, or 307 to a download URL when "
      "it is over 4 MB and the store hands out links (S3)", tags=["runs"],
      query=[query_param("iteration", "a loop body's iteration path, as in its stage result (2/1)")])
    r("POST", "/runs/{run_id}/cancel", cancel_run, name="cancel_run", auth="run", summary="Cancel a run",
      response_model=RunOut, status_code=202, tags=["runs"])
    r("GET", "/runs/{run_id}/events", run_events, name="run_events", auth="read",
      summary="A run's events, live (SSE; resume with Last-Event-ID or ?after=N)", tags=["runs"],
      query=[query_param("after", "resume after this event id", type="integer", minimum=0),
             query_param("interval", "polling interval, seconds (0.05-10)", type="number")])
