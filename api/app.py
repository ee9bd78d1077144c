"""The FastAPI application: routers under /api/v1, one error handler, middleware, lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import ratelimit
from api.audit.router import router as audit_router
from api.auth.router import router as keys_router
from api.auth.service import ensure_bootstrap_key
from api.datasets.router import router as datasets_router
from api.deletion_requests.notes import router as deletion_notes_router
from api.deletion_requests.router import router as deletion_router
from api.families.router import router as families_router
from api.health.router import router as health_router
from api.idempotency import IdempotencyMiddleware
from api.jobs.compare import compare_router, views_router
from api.jobs.router import router as jobs_router
from api.methods.router import router as methods_router
from api.models.router import router as models_router
from api.tuning.router import router as tuning_router
from api.webhooks.router import router as webhooks_router
from core.audit.events import subject_salt
from core.datasets.reader import ShardReader
from core.db import session_factory
from core.errors import ExpungeError
from core.jobs import Sweeper
from core.settings import Settings, get_settings
from core.signing import load_signer
from core.storage import InvalidKey, ObjectNotFound, StorageUnavailable, open_store

log = logging.getLogger("expunge.api")
API_PREFIX = "/api/v1"
REPO_FRONTEND = Path(__file__).resolve().parent.parent / "frontend" / "dist"


def _route_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def _error(status: int, detail: Any, code: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse(
        {"detail": detail, "code": code, **extra}, status_code=status, headers=headers
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


# What each kind of validation error should tell the client to do.
_HINTS = {
    "extra_forbidden": "unknown field; remove it (see the operation's schema in "
    "/api/v1/openapi.json for the fields it takes)",
    "int_type": "send a JSON integer (not a string, a fraction or true/false)",
    "int_from_float": "send a whole JSON integer",
    "float_type": "send a JSON number (not a string or true/false)",
    "bool_type": "send true or false",
    "string_type": "send a JSON string",
    "list_type": "send a JSON array",
    "dict_type": "send a JSON object",
    "model_type": "send a JSON object",
    "model_attributes_type": "send a JSON object",
}


def _issue_text(error: dict[str, Any]) -> str:
    hint = _HINTS.get(error["type"])
    return f"{error['msg']}: {hint}" if hint else error["msg"]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ExpungeError)
    async def _expunge(_: Request, exc: ExpungeError) -> JSONResponse:
        return _error(exc.status_code, exc.message, exc.code, field=exc.field)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        broken = next((e for e in errors if e["type"] == "json_invalid"), None)
        if broken is not None:
            # The body is not JSON at all: a malformed request (400), as docs/api.md says.
            where = broken["loc"][-1] if broken.get("loc") else "?"
            reason = (broken.get("ctx") or {}).get("error", "JSON decode error")
            return _error(
                400,
                f"the request body is not valid JSON ({reason} at character {where}); "
                "send a UTF-8 JSON document",
                "bad_request",
            )
        message = "; ".join(f"{_field_path(e['loc'])}: {_issue_text(e)}" for e in errors[:5])
        safe = [
            {"loc": list(e["loc"]), "msg": _issue_text(e), "type": e["type"]} for e in errors[:50]
        ]
        return _error(422, safe, "validation_error", message=message)

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _db_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return _error(503, "the database is unavailable; retry shortly", "unavailable")

    @app.exception_handler(DataError)
    async def _bad_value(_: Request, exc: DataError) -> JSONResponse:
        # SQLSTATE class 22: the database refused a value the request carried (a NUL
        # character in text, an integer past 64 bits). The request is at fault, not us.
        reason = (
            "text may not contain NUL (\\u0000) characters"
            if "NUL" in str(exc.orig)
            else "a value is out of range for its field"
        )
        return _error(422, f"invalid value: {reason}", "invalid_value")

    @app.exception_handler(OverflowError)
    async def _too_large(_: Request, exc: OverflowError) -> JSONResponse:
        # SQLite's driver raises this (not a DataError) for an integer past 64 bits.
        log.warning("overflow answered as 422: %s", exc, exc_info=exc)
        return _error(422, "invalid value: a number is out of range for its field", "invalid_value")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # Framework errors (an unparseable body, an unknown path) in the same typed shape.
        if exc.status_code < 400:
            return await http_exception_handler(request, exc)
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
        detail = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = (
                "the request body could not be parsed; send UTF-8 JSON (or the multipart "
                "form the operation documents)"
            )
        response = _error(exc.status_code, detail, codes.get(exc.status_code, "http_error"))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of one route; a path can have several.
            allowed = allowed_methods(request.app, request.url.path)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.exception_handler(DBAPIError)
    async def _db_error(_: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return _error(503, "the database connection was lost; retry shortly", "unavailable")
        log.exception("database error")
        return _error(500, "internal database error", "internal")

    @app.exception_handler(StorageUnavailable)
    async def _storage_down(_: Request, exc: StorageUnavailable) -> JSONResponse:
        return _error(503, f"object storage is unavailable; retry shortly ({exc})", "unavailable")

    @app.exception_handler(ObjectNotFound)
    async def _object_missing(_: Request, exc: ObjectNotFound) -> JSONResponse:
        return _error(404, f"stored object is missing: {exc}", "object_missing")

    @app.exception_handler(InvalidKey)
    async def _bad_key(_: Request, exc: InvalidKey) -> JSONResponse:
        return _error(422, str(exc), "invalid_key")


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(app: Starlette, path: str) -> list[str]:
    """Every method some API route serves at ``path`` (with HEAD for GET, and OPTIONS);
    empty when no API route has the path."""
    from starlette.routing import Match, Mount

    found = []
    for method in _METHODS:
        scope: Scope = {"type": "http", "method": method, "path": path, "root_path": ""}
        for route in app.router.routes:
            if isinstance(route, Mount) and route.path in ("", "/"):
                continue  # the dashboard's static files answer every path
            if route.matches(scope)[0] is Match.FULL:
                found.append(method)
                break
    return [*found, "OPTIONS"] if found else []


class AllowMiddleware:
    """``OPTIONS`` on any API path: 204 with ``Allow`` naming every method the path has
    (Starlette would answer 405 and name one route's methods only)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        allowed = allowed_methods(scope["app"], scope["path"])
        if allowed:
            response: Response = Response(status_code=204, headers={"Allow": ", ".join(allowed)})
        else:
            response = _error(404, "Not Found", "not_found")
        await response(scope, receive, send)


def document_statuses(
    schema: dict[str, Any], limited: Collection[tuple[str, str]] = ()
) -> dict[str, Any]:
    """Add the statuses middleware and shared handlers answer to every operation of the
    OpenAPI document, so a client (and the schemathesis run) knows each one: 429 where a
    rate limit applies, 503 (database or storage down) everywhere, 400 and 413 wherever
    a body is read, 409 and 422 wherever Idempotency-Key is honoured (every POST)."""
    body = {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
    error = {"content": {"application/json": body}}
    unavailable = {
        **error,
        "description": "The database or object storage is unavailable; retry after Retry-After",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.setdefault("503", unavailable)
            if (method.upper(), path) in limited:
                responses.setdefault("429", ratelimit.RATE_LIMITED_RESPONSE)
            if "requestBody" in operation or method == "post":
                unparsable = "A body that cannot be parsed"
                responses.setdefault("400", {**error, "description": unparsable})
                responses.setdefault("413", {**error, "description": "A body over the size limit"})
            if method == "post":
                running = "The first request with this Idempotency-Key is still running"
                responses.setdefault("409", {**error, "description": running})
    return schema


def _database_down(exc: BaseException) -> bool:
    """Errors that mean "the database cannot be reached now", not "this request is bad"."""
    if isinstance(exc, (OperationalError, PoolTimeout)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class DatabaseUnavailableMiddleware:
    """503 + Retry-After for a database outage met outside a route (the idempotency
    middleware queries it before any route's handlers can catch the error)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = finished = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if not _database_down(exc):
                raise
            if finished:
                # Bookkeeping after a complete response (e.g. storing an idempotent
                # reply) failed: the client has its answer; raising would only make the
                # server drop the kept-alive connection under the client's next request.
                log.warning("database unavailable after the response was sent: %s", exc)
                return
            if started:
                raise
            log.warning("database unavailable: %s", exc)
            response = _error(503, "the database is unavailable; retry shortly", "unavailable")
            await response(scope, receive, send)


# A JSON body is parsed whole into memory: far below the upload limit. The largest
# legitimate one is a forget scope of 100 000 sample ids (about 20 MB at worst).
MAX_JSON_BODY_BYTES = 32 * 1024 * 1024


class BodyLimitMiddleware:
    """Refuse bodies over the limit before reading them (413, not a full disk or memory):
    the upload limit for multipart uploads, :data:`MAX_JSON_BODY_BYTES` for the rest."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            limit = self.max_bytes
            if not headers.get(b"content-type", b"").lower().startswith(b"multipart/"):
                limit = min(limit, MAX_JSON_BODY_BYTES)
            if length is not None and length.isdigit() and int(length) > limit:
                response = _error(
                    413,
                    f"request body is over the {limit} byte limit; send less per request",
                    "payload_too_large",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, *, run_sweeper: bool = True) -> FastAPI:
    settings = settings or get_settings()
    factory = session_factory(settings)
    store = open_store(
        settings.storage_url, settings.s3_access_key, settings.s3_secret_key, settings.s3_region
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Fail at start, not at the first certificate: the signing key and salt must load.
        load_signer(settings)
        subject_salt(settings)
        if settings.bootstrap_admin_key:
            with factory() as session:
                ensure_bootstrap_key(session, settings.bootstrap_admin_key)
                session.commit()
        sweeper = Sweeper(settings, store=store).start() if run_sweeper else None
        yield
        if sweeper:
            sweeper.stop()

    app = FastAPI(
        title="Expunge",
        version="0.1.0",
        summary="Machine unlearning as a service",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        generate_unique_id_function=_route_id,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.session_factory = factory
    app.state.store = store
    app.state.shard_reader = ShardReader(store)

    install_error_handlers(app)
    # The limiter (Redis or memory) and its 429 handler; routes declare rate_limit(group).
    ratelimit.install(app, settings)
    for router in (
        health_router,
        keys_router,
        datasets_router,
        models_router,
        tuning_router,
        jobs_router,
        views_router,
        compare_router,
        methods_router,
        families_router,
        deletion_router,
        deletion_notes_router,
        webhooks_router,
        audit_router,
    ):
        app.include_router(router, prefix=API_PREFIX)

    def _openapi() -> dict[str, Any]:
        return document_statuses(FastAPI.openapi(app), ratelimit.limited_operations(app))

    app.openapi = _openapi  # type: ignore[method-assign]

    app.add_middleware(IdempotencyMiddleware, session_factory=factory)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes + 1024 * 1024)
    # OPTIONS needs no key, no body and no database: answered before all of it.
    app.add_middleware(AllowMiddleware)
    # Around everything: a database outage in any middleware is a 503, never a 500.
    app.add_middleware(DatabaseUnavailableMiddleware)

    frontend = settings.frontend_dir or REPO_FRONTEND
    if (frontend / "index.html").exists():
        app.mount("/", StaticFiles(directory=frontend, html=True), name="frontend")
    else:

        @app.get("/", include_in_schema=False)
        def _root() -> RedirectResponse:
            # No dashboard build yet: the interactive API docs are the way in.
            return RedirectResponse("/docs")

    return app
