"""Assemble the ASGI application from the routes plugins contribute.

``create_app(services)`` asks every plugin for routes through
``fm_register_routes(register)`` and wraps each endpoint so that it gets,
in this order: an identity (authenticators), a rate-limit check, a bounded
and validated JSON body, and errors turned into one JSON shape. The same
app runs under uvicorn (``fm serve``) and under mangum on Lambda
(``flowmason.functions.api``). See the package docstring for the contract
plugins (routes, authenticators, rate limiters) build on.

Starlette rather than FastAPI: FastAPI's import alone costs a few hundred
milliseconds of Lambda cold start; the OpenAPI document is built here from
the same route metadata (``request_model``/``response_model`` are pydantic
models) instead.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowmason.kernel.errors import FlowMasonError

log = logging.getLogger("flowmason.api")

LOCAL_IDENTITY = {"subject": "local", "org_id": "default", "roles": ["owner"], "scopes": ["*"]}

# error code -> HTTP status; an exception may also carry ``http_status`` itself
STATUS_BY_CODE = {
    "bad_request": 400, "bad_json": 400,
    "unauthorized": 401, "forbidden": 403, "not_found": 404, "method_not_allowed": 405,
    "conflict": 409, "condition_failed": 409, "run_not_finished": 409,
    "request_timeout": 408, "payload_too_large": 413, "item_too_large": 413,
    "bad_input": 422, "validation": 422, "pipeline_load": 422, "pipeline_invalid": 422,
    "unknown_component": 422, "template": 422, "config": 422,
    "rate_limited": 429,
    "store_unavailable": 503, "storage": 503, "transaction_failed": 503, "value_not_stored": 503,
}


class ApiError(FlowMasonError):
    """An error with an explicit HTTP status; plugins may raise it from endpoints and authenticators."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None, hint: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, field=field, hint=hint)
        self.code = code
        self.http_status = status
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, *, field: str | None = None, hint: str | None = None,
                   headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "field": field, "hint": hint}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _from_exception(exc: BaseException) -> JSONResponse:
    if isinstance(exc, FlowMasonError):
        status = getattr(exc, "http_status", None) or STATUS_BY_CODE.get(exc.code, 500)
        extra: dict[str, Any] = {"stage": exc.stage, "pipeline": exc.pipeline}
        problems = getattr(exc, "problems", None)
        if problems:
            extra["problems"] = [p.to_dict() for p in problems]
        if status >= 500 and exc.code not in STATUS_BY_CODE:
            return error_response(500, "internal", "the server failed to handle the request",
                                  hint="retry; if it keeps failing, report it with the time of the request")
        return error_response(status, exc.code, exc.message, field=exc.field, hint=exc.hint,
                              headers=getattr(exc, "headers", None), **extra)
    # never echo an unexpected exception to the client: it may hold internals; the log has it
    log.error("unexpected error while handling a request", exc_info=exc)
    return error_response(500, "internal", "the server failed to handle the request",
                          hint="retry; if it keeps failing, report it with the time of the request")


@dataclass
class RouteSpec:
    method: str
    path: str
    endpoint: Callable[..., Any]
    name: str | None = None
    auth: str | None = "read"
    summary: str = ""
    request_model: type[BaseModel] | None = None
    response_model: type[BaseModel] | None = None
    status_code: int = 200
    tags: list[str] = field(default_factory=list)
    plugin: str = ""
    query: list[dict[str, Any]] = field(default_factory=list)  # OpenAPI parameter objects (see ``query_param``)


def query_param(name: str, description: str, *, required: bool = False, **schema: Any) -> dict[str, Any]:
    """A query parameter for ``register(..., query=[...])``: ``query_param("limit", "...", type="integer")``."""
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or {"type": "string"}}


def collect_routes() -> list[RouteSpec]:
    """Every route the loaded plugins register, in registration order; duplicates are an error."""
    from flowmason.kernel.errors import PluginError
    from flowmason.kernel.plugins import call_plugin, each_plugin, get_plugin_manager

    pm = get_plugin_manager()
    specs: list[RouteSpec] = []
    seen: dict[tuple[str, str], str] = {}
    for plugin, call in each_plugin(pm, "fm_register_routes"):

        def register(method: str, path: str, endpoint: Callable[..., Any], *, _plugin: str = plugin, **options: Any) -> None:
            key = (method.upper(), path)
            if key in seen:
                raise PluginError(f"route {method.upper()} {path} is registered by plugin '{seen[key]}' and by '{_plugin}'",
                                  hint="uninstall one of the two plugins")
            seen[key] = _plugin
            specs.append(RouteSpec(method=method.upper(), path=path, endpoint=endpoint, plugin=_plugin, **options))

        call_plugin(plugin, "fm_register_routes", call, register=register)
    return specs


class _Guards:
    """Authentication and rate limiting, resolved once from the registry."""

    def __init__(self) -> None:
        from flowmason.kernel.plugins import get_registry

        reg = get_registry()
        self.authenticators = [getattr(a, "authenticate", a) for a in reg.authenticators.values()]
        self.limiters = []
        for value in reg.rate_limiters.values():
            limiter = value if hasattr(value, "check") else value()
            self.limiters.append(limiter.check)

    async def identity(self, request: Request) -> dict[str, Any] | None:
        if not self.authenticators:
            return dict(LOCAL_IDENTITY)
        for authenticate in self.authenticators:
            found = authenticate(request)
            if inspect.isawaitable(found):
                found = await found
            if found:
                return found
        return None

    async def limit(self, request: Request, identity: dict[str, Any] | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        for check in self.limiters:
            decision = check(request, identity)
            if inspect.isawaitable(decision):
                decision = await decision
            if decision is None or decision is True:
                continue
            headers.update({str(k): str(v) for k, v in (decision.get("headers") or {}).items()})
            if not decision.get("allowed", False):
                retry = decision.get("retry_after")
                if retry is not None:
                    headers["Retry-After"] = str(max(1, int(float(retry) + 0.999)))
                raise ApiError(429, "rate_limited", "too many requests", hint="wait for Retry-After seconds",
                               headers=headers)
        return headers


def has_scope(identity: dict[str, Any], scope: str) -> bool:
    scopes = set(identity.get("scopes") or [])
    return bool(scopes & {"*", "admin", scope})


async def read_body(request: Request, limit: int, timeout: float | None = None) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes before reading it all, and
    (408) a body still arriving after ``timeout`` seconds (default ``FM_BODY_TIMEOUT_S``): a client
    that trickles its body must not hold a connection and a worker forever."""
    import asyncio

    from flowmason.kernel.settings import get_settings

    declared = request.headers.get("content-length")
    too_big = ApiError(413, "payload_too_large", f"the request body is larger than {limit} bytes",
                       hint="send a smaller body; pass large data by reference")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    timeout = get_settings().body_timeout_s if timeout is None else timeout
    chunks: list[bytes] = []
    size = 0
    stream = request.stream().__aiter__()
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), timeout=max(left, 0.001))
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise ApiError(408, "request_timeout", f"the request body did not arrive within {timeout:g} seconds",
                           hint="send the whole body at once", headers={"Connection": "close"}) from None
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _validation_error(err: ValidationError) -> ApiError:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or None
    return ApiError(422, "validation", first.get("msg", "invalid value"), field=loc,
                    hint="see the request schema in /openapi.json")


def _wrap(spec: RouteSpec, guards: _Guards, max_body: int) -> Callable[[Request], Any]:
    is_async = inspect.iscoroutinefunction(spec.endpoint)

    async def endpoint(request: Request) -> Response:
        try:
            try:
                identity = await guards.identity(request)
            except ApiError as exc:
                if exc.http_status == 401:
                    # refused credentials count against the caller's address, so guessing tokens is limited too
                    await guards.limit(request, None)
                raise
            if spec.auth is not None:
                if identity is None:
                    await guards.limit(request, None)
                    raise ApiError(401, "unauthorized", "authentication required",
                                   hint="send credentials (for example an Authorization header)",
                                   headers={"WWW-Authenticate": "Bearer"})
                if not has_scope(identity, spec.auth):
                    raise ApiError(403, "forbidden", f"this needs the '{spec.auth}' scope")
            request.state.identity = identity
            extra_headers = await guards.limit(request, identity)
            if spec.request_model is not None:
                raw = await read_body(request, max_body)
                try:
                    data = json.loads(raw or b"null")
                except (ValueError, UnicodeDecodeError) as exc:
                    raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}",
                                   hint="send a JSON object with Content-Type: application/json") from None
                if not isinstance(data, dict):
                    raise ApiError(422, "validation", "the body must be a JSON object", hint="send a JSON object")
                request.state.json = data
                try:
                    request.state.body = spec.request_model.model_validate(data)
                except ValidationError as err:
                    raise _validation_error(err) from None
            result = await spec.endpoint(request) if is_async else await run_in_threadpool(spec.endpoint, request)
        except Exception as exc:  # noqa: BLE001 - every failure leaves as the one JSON shape
            return _from_exception(exc)
        if isinstance(result, Response):
            response = result
        else:
            status = spec.status_code
            if isinstance(result, tuple):
                status, result = result
            if isinstance(result, BaseModel):
                result = result.model_dump(mode="json")
            response = JSONResponse(result, status_code=status)
        response.headers.update(extra_headers)
        return response

    endpoint.__name__ = spec.name or spec.endpoint.__name__
    return endpoint


_PATH_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")


def openapi_document(specs: list[RouteSpec], *, title: str = "FlowMason API", version: str = "0.1.0") -> dict[str, Any]:
    """OpenAPI 3.1 from route metadata; pydantic models go under components/schemas."""
    from .schemas import ErrorOut

    schemas: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    error_ref = ref(ErrorOut)
    paths: dict[str, Any] = {}
    for spec in specs:
        op: dict[str, Any] = {"operationId": spec.name or spec.endpoint.__name__, "summary": spec.summary}
        if spec.tags:
            op["tags"] = spec.tags
        params = [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "integer", "minimum": 0} if convert == "int" else {"type": "string"}}
            for name, convert in _PATH_PARAM.findall(spec.path)
        ] + list(spec.query)
        if params:
            op["parameters"] = params
        if spec.request_model is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(spec.request_model)}}}
        ok: dict[str, Any] = {"description": "OK"}
        if spec.response_model is not None:
            ok["content"] = {"application/json": {"schema": ref(spec.response_model)}}
        op["responses"] = {str(spec.status_code): ok, "default": {
            "description": "Error", "content": {"application/json": {"schema": error_ref}}}}
        if spec.auth is not None:
            op["security"] = [{"bearer": [spec.auth]}]
        # OpenAPI templates are {name}; the converter (`{seq:int}`) is starlette's, told by the parameter's schema
        paths.setdefault(_PATH_PARAM.sub(r"{\1}", spec.path), {})[spec.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def _routes(specs: list[RouteSpec], guards: _Guards, max_body: int) -> list[Route]:
    """One starlette Route per path, dispatching on the method, so a 405's ``Allow`` lists every method."""
    by_path: dict[str, dict[str, Callable[[Request], Any]]] = {}
    for spec in specs:
        by_path.setdefault(spec.path, {})[spec.method] = _wrap(spec, guards, max_body)
    routes = []
    for path, endpoints in by_path.items():
        if len(endpoints) == 1:
            ((method, endpoint),) = endpoints.items()
            routes.append(Route(path, endpoint, methods=[method], name=endpoint.__name__))
            continue

        async def dispatch(request: Request, _endpoints: dict = endpoints) -> Response:
            method = "GET" if request.method == "HEAD" and "HEAD" not in _endpoints else request.method
            return await _endpoints[method](request)

        routes.append(Route(path, dispatch, methods=list(endpoints), name=path))
    return routes


def create_app(services: Any, *, max_body: int | None = None) -> Starlette:
    """The API: plugin routes behind the guards, ``/openapi.json``, JSON errors for unknown paths."""
    from flowmason.kernel.settings import get_settings

    max_body = max_body or get_settings().max_body_bytes
    specs = collect_routes()
    guards = _Guards()
    document = openapi_document(specs)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    routes = _routes(specs, guards, max_body)
    routes.append(Route("/openapi.json", openapi, methods=["GET"], name="openapi"))
    from .docs import docs_routes

    routes.extend(docs_routes())

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        message = "no such route" if exc.status_code == 404 else str(exc.detail)
        # starlette puts `Allow` on its 405 (RFC 9110 wants it there); keep its headers
        return error_response(exc.status_code, code, message, hint="GET /openapi.json lists the routes",
                              headers=dict(exc.headers or {}))

    async def unexpected(request: Request, exc: Exception) -> Response:
        return _from_exception(exc)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        services.start()
        try:
            yield
        finally:
            await services.stop()

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: unexpected},
                    lifespan=lifespan)
    app.state.fm = services
    app.state.routes = specs
    return app
