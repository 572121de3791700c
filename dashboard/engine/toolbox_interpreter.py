"""Toolbox routes of the code interpreter (``/process/interpreter/...``), Daytona's wire format.

``POST /context`` ``{cwd?, language?}`` makes a context, ``GET /context`` lists those made
(not the default one), ``DELETE /context/{id}`` ends one. The WebSocket ``/execute``
takes one ``{code, contextId?, envs?, timeout?}`` message, streams ``{type, text, name,
value, traceback}`` frames (``stdout``, ``stderr``, ``error``, then ``control``
``completed``/``interrupted``) as the code writes, and closes 1000 when the run is over,
4008 when it ran past ``timeout`` seconds (default 10 minutes, 0 for none), 1001 when
the worker died. Bad requests close the socket as the daemon does: 1002 for a message
that is not the expected JSON, 1008 for an empty code, a negative timeout or an unknown
context.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from dashboard.engine.errors import ApiError, NotFound
from dashboard.engine.interpreter import Context, Frame, InterpreterManager
from dashboard.engine.toolbox import check_cwd
from dashboard.engine.toolbox_process import _deny, _engine, _hub, _record, _request_hub
from dashboard.engine.validation import Body, read_json

DEFAULT_TIMEOUT = 600  # seconds, the daemon's default for a run
MAX_PENDING_FRAMES = 1024  # a client further behind is closed as a slow consumer
CLOSE_TIMEOUT = 4008  # Daytona's close code for a run past its timeout
MAX_REASON = 120  # bytes a close reason may take (the frame allows 123)


class BadMessage(Exception):
    """The first message is unusable; carries the close code and reason to send."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _interpreters(request: Request) -> InterpreterManager:
    return _request_hub(request).interpreters


async def create_context(request: Request) -> Response:
    """POST /process/interpreter/context {cwd?, language?}: 200 InterpreterContext."""
    record = _record(request.app, request.path_params["sandbox_id"])
    interpreters = _hub(request.app, record).interpreters
    body = Body(await read_json(request) or {}, {"cwd", "language"})
    language = body.string("language")
    cwd = await check_cwd(request, record, body.string("cwd"))
    context = await interpreters.create(cwd, language)
    return JSONResponse(context.to_json())


async def list_contexts(request: Request) -> Response:
    """GET /process/interpreter/context: {contexts: [...]}, without the default one."""
    return JSONResponse({"contexts": _interpreters(request).listed()})


async def delete_context(request: Request) -> Response:
    """DELETE /process/interpreter/context/{id}: 200 with the daemon's message."""
    await _interpreters(request).delete(request.path_params["context_id"])
    return JSONResponse({"message": "Context deleted successfully"})


def _parse(payload: str | bytes) -> tuple[str, str | None, dict[str, str], float]:
    """(code, contextId, envs, timeout) from the run request, checked as the daemon does."""
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):
        raise BadMessage(1002, "invalid JSON payload") from None
    if not isinstance(message, dict):
        raise BadMessage(1002, "invalid JSON payload")
    code = message.get("code")
    context_id = message.get("contextId")
    envs = message.get("envs")
    timeout = message.get("timeout")
    envs_ok = envs is None or (
        isinstance(envs, dict) and all(isinstance(v, str) for v in envs.values())
    )
    timeout_ok = timeout is None or (isinstance(timeout, int) and not isinstance(timeout, bool))
    if (
        not isinstance(code, str | None)
        or not isinstance(context_id, str | None)
        or not envs_ok
        or not timeout_ok
    ):
        raise BadMessage(1002, "invalid JSON payload")
    if not code:
        raise BadMessage(1008, "code is required")
    if timeout is not None and timeout < 0:
        raise BadMessage(1008, "timeout must be greater than or equal to 0")
    if envs and any(not key or "=" in key or "\x00" in key for key in envs):
        raise BadMessage(1008, "envs keys must be non-empty and contain no '=' or NUL")
    if envs and any("\x00" in value for value in envs.values()):
        raise BadMessage(1008, "envs values must not contain NUL characters")
    return (
        code,
        context_id,
        dict(envs or {}),
        float(DEFAULT_TIMEOUT if timeout is None else timeout),
    )


def _find_context(interpreters: InterpreterManager, context_id: str | None) -> Context:
    if context_id is None:
        return interpreters.default()
    try:
        return interpreters.get(context_id)
    except NotFound:
        raise BadMessage(1008, f"context not found: {context_id}"[:MAX_REASON]) from None


async def _close(websocket: WebSocket, code: int, reason: str = "") -> None:
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(RuntimeError, OSError):
        await websocket.close(code, reason.encode()[:MAX_REASON].decode(errors="ignore"))


async def execute(websocket: WebSocket) -> None:
    """WebSocket /process/interpreter/execute: one run, streamed."""
    try:
        app = websocket.app
        record = _record(app, websocket.path_params["sandbox_id"])
        interpreters = _hub(app, record).interpreters
    except ApiError as error:
        await _deny(websocket, error)
        return
    await websocket.accept()
    try:
        first = await websocket.receive()
    except (WebSocketDisconnect, RuntimeError):
        return
    if first["type"] == "websocket.disconnect":
        return
    payload = first.get("text")
    if payload is None:
        payload = first.get("bytes") or b""
    try:
        code, context_id, envs, timeout = _parse(payload)
        context = _find_context(interpreters, context_id)
    except BadMessage as bad:
        await _close(websocket, bad.code, bad.reason)
        return
    with _engine(app).busy(record.id):
        close_code, reason = await _stream_run(websocket, context, code, envs, timeout)
    await _close(websocket, close_code, reason)


async def _stream_run(
    websocket: WebSocket, context: Context, code: str, envs: dict[str, str], time_limit: float
) -> tuple[int, str]:
    """Run the code, relaying frames as they come; the close code and reason to send.

    The run goes on if the client leaves (as on Daytona); its output is then dropped.
    """
    frames: asyncio.Queue[Frame | None] = asyncio.Queue()
    state = {"slow": False, "gone": False}

    def sink(frame: Frame) -> None:
        if state["slow"] or state["gone"]:
            return
        if frames.qsize() >= MAX_PENDING_FRAMES:
            state["slow"] = True
            frames.put_nowait(None)
            return
        frames.put_nowait(frame)

    async def send() -> None:
        while (frame := await frames.get()) is not None:
            await websocket.send_text(json.dumps(frame))

    async def watch_client() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # nothing is expected after the request; pings are answered below us
        state["gone"] = True

    sender = asyncio.ensure_future(send())
    watcher = asyncio.ensure_future(watch_client())
    try:
        try:
            outcome = await context.execute(code, envs, time_limit, sink)
        except ApiError as error:
            return 1011, f"failed to start the interpreter: {error.message}"
        if not state["slow"]:
            frames.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(sender), 10)
    finally:
        for task in (sender, watcher):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    if state["slow"]:
        return 1008, "slow consumer"
    if outcome == "timeout":
        return CLOSE_TIMEOUT, ""
    if outcome == "died":
        return 1001, "worker process ended"
    return 1000, ""


def routes() -> list[BaseRoute]:
    """The interpreter routes, mounted at /toolbox."""
    base = "/{sandbox_id}/process/interpreter"
    return [
        Route(f"{base}/context", create_context, methods=["POST"]),
        Route(f"{base}/context", list_contexts, methods=["GET"]),
        Route(f"{base}/context/{{context_id}}", delete_context, methods=["DELETE"]),
        WebSocketRoute(f"{base}/execute", execute),
    ]
