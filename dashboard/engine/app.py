"""The ASGI application: authentication, error shape, and the two route trees."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from dashboard.engine import (
    api,
    audit,
    events,
    git,
    preview,
    snapshots,
    ssh,
    telemetry,
    toolbox,
    toolbox_interpreter,
    toolbox_ports,
    toolbox_process,
    usage,
    volumes,
)
from dashboard.engine.errors import ApiError, NotFound
from dashboard.engine.fs import FsError
from dashboard.engine.lifecycle import Engine
from dashboard.engine.store import iso, now

log = logging.getLogger("sandbar.engine")


def error_response(error: ApiError, path: str) -> JSONResponse:
    """Daytona's error body: statusCode, message, error (plus path and timestamp)."""
    return JSONResponse(error.body(path, iso(now())), status_code=error.status)


class BearerAuth:
    """Refuse every request without ``Authorization: Bearer <key>`` (constant-time check)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        provided = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                provided = value
                break
        if hmac.compare_digest(provided, self.expected):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401, "reason": "Unauthorized"})
            return
        message = (
            "Invalid API key" if provided else "Missing API key: send Authorization: Bearer <key>"
        )
        error = ApiError(message, status=401)
        response = JSONResponse(
            error.body(scope.get("path", ""), iso(now())),
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc, request.url.path)


async def _fs_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FsError)
    return error_response(
        ApiError(exc.message, status=exc.status, code=exc.code or None), request.url.path
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = NotFound(f"Cannot {request.method} {request.url.path}")
    else:
        error = ApiError(str(exc.detail), status=exc.status_code)
    response = error_response(error, request.url.path)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(ApiError("Internal server error"), request.url.path)


def create_app(engine: Engine, api_key: str, *, manage_engine: bool = True) -> Starlette:
    """Build the application; with ``manage_engine`` its lifespan starts and stops the engine."""

    hub = events.EventHub(api_key)
    events.wire(engine, hub)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        if manage_engine:
            await engine.startup()
        try:
            yield {}
        finally:
            await hub.close()
            if manage_engine:
                await engine.shutdown()

    app = Starlette(
        routes=[
            Mount(
                "/api",
                routes=[
                    *api.routes(),
                    *usage.routes(),
                    *volumes.routes(),
                    *snapshots.routes(),
                    *audit.routes(),
                    *preview.routes(),
                    *ssh.routes(),
                    *telemetry.routes(),
                ],
            ),
            Mount(
                "/toolbox",
                routes=[
                    *toolbox.routes(),
                    *toolbox_process.routes(),
                    *toolbox_interpreter.routes(),
                    *git.routes(),
                    *toolbox_ports.routes(),
                ],
            ),
        ],
        exception_handlers={
            ApiError: _api_error,
            FsError: _fs_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.audit_key_hint = (api_key[:3], api_key[-3:])
    # Middleware added last runs first: events (own token check), bearer check, audit.
    app.add_middleware(audit.AuditMiddleware, log=engine.audit, actor=engine.quotas.key_name)
    app.add_middleware(BearerAuth, api_key=api_key)
    app.add_middleware(events.EventsGate, hub=hub)
    telemetry.install(app, engine)
    # Outermost: a preview host's requests go to its sandbox before any Bearer check.
    preview.install(app, engine, api_key)
    return app
