"""Toolbox routes for sessions, command logs and PTY terminals, in Daytona's wire format.

Mounted under ``/toolbox/{sandboxId}`` next to :mod:`dashboard.engine.toolbox`. The
sessions and terminals of each sandbox live in a :class:`ProcessHub` owned by the
application (not by any connection), so a dropped client never takes a shell with it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from dashboard.engine import logs
from dashboard.engine.errors import ApiError, BadRequest, NotFound
from dashboard.engine.interpreter import InterpreterManager, WorkerProcess
from dashboard.engine.lifecycle import Engine
from dashboard.engine.pty import (
    MAX_COLS,
    MAX_ROWS,
    PtyManager,
    PtyProcess,
    Terminal,
    check_size,
    render_screen,
)
from dashboard.engine.runtime import NotRunning, RuntimeError_, rootfs
from dashboard.engine.sessions import SessionManager, ShellProcess, check_id
from dashboard.engine.store import SandboxRecord, iso, now
from dashboard.engine.toolbox import BASE_ENV, check_cwd
from dashboard.engine.validation import Body, Query, read_json

log = logging.getLogger("sandbar.engine")

EXIT_CONTROL = "X-Daytona-Pty-Exit-Control"
SDK_VERSION_PREFIX = "X-Daytona-SDK-Version~"
ENVS_PREFIX = "X-Daytona-Pty-Envs~"
MAX_INPUT_FRAME = 64 << 10  # the daemon's limit for one PTY input frame
SHELL = ("/bin/bash", "-i", "-l")
# The daemon runs a sandbox's entrypoint as this command of this session. The engine
# starts sandboxes without one, so these answer "session entrypoint not found" unless a
# client made a session of that name, exactly as the daemon does without an entrypoint.
ENTRYPOINT = {"session_id": "entrypoint", "command_id": "entrypoint_command"}


@dataclass
class ProcessHub:
    """The sessions and terminals of one sandbox, for one run of it."""

    sessions: SessionManager
    terminals: PtyManager
    interpreters: InterpreterManager
    started_at: float  # of the sandbox's process tree: a restart means a fresh hub


def _engine(app: Any) -> Engine:
    engine: Engine = app.state.engine
    return engine


def _record(app: Any, sandbox_id: str) -> SandboxRecord:
    engine = _engine(app)
    record = engine.find_started(sandbox_id)
    engine.touch(record.id)
    return record


def _hub(app: Any, record: SandboxRecord) -> ProcessHub:
    """This sandbox's hub, created on first use.

    Like the Daytona daemon, sessions and terminals live as long as the sandbox's
    processes: once it stops (or is deleted) its hub, session logs and interpreter
    contexts are dropped (their processes died with the sandbox).
    """
    engine = _engine(app)
    runtime = engine.runtime
    logs_root = engine.config.engine_dir / "sessions"
    hubs: dict[str, ProcessHub] | None = getattr(app.state, "process_hubs", None)
    if hubs is None:
        shutil.rmtree(logs_root, ignore_errors=True)  # left by an earlier engine run
        hubs = app.state.process_hubs = {}
    for sandbox_id, stale in list(hubs.items()):
        running = runtime.running.get(sandbox_id)
        if running is None or running.started_at != stale.started_at:
            del hubs[sandbox_id]
            shutil.rmtree(logs_root / sandbox_id, ignore_errors=True)
    hub = hubs.get(record.id)
    if hub is None:
        env = {**BASE_ENV, **record.env}

        async def spawn_shell(argv: Sequence[str], fds: Sequence[int]) -> ShellProcess:
            return await runtime.spawn(
                record.id, argv, env=env, cwd=rootfs.HOME, stdin=True, pass_fds=fds
            )

        async def spawn_pty(argv: Sequence[str], envs: Mapping[str, str], cwd: str) -> PtyProcess:
            return await runtime.spawn(record.id, argv, env=envs, cwd=cwd, pty=True)

        async def spawn_worker(argv: Sequence[str], cwd: str) -> WorkerProcess:
            return await runtime.spawn(record.id, argv, env=env, cwd=cwd, stdin=True)

        hub = ProcessHub(
            SessionManager(logs_root / record.id, spawn_shell),
            PtyManager(spawn_pty),
            InterpreterManager(spawn_worker, rootfs.HOME),
            runtime.get(record.id).started_at,
        )
        hubs[record.id] = hub
    return hub


def _request_hub(request: Request) -> ProcessHub:
    return _hub(request.app, _record(request.app, request.path_params["sandbox_id"]))


def _spawn_error(error: Exception) -> ApiError:
    if isinstance(error, NotRunning):
        return ApiError(str(error), status=409)
    return ApiError(f"could not start the process: {error}", status=503)


# -- sessions -----------------------------------------------------------------------


async def create_session(request: Request) -> Response:
    """POST /process/session {sessionId}: 201, no body."""
    hub = _request_hub(request)
    body = Body(await read_json(request), {"sessionId"})
    hub.sessions.create(check_id(body.raw("sessionId"), "sessionId"))
    return Response(status_code=201)


async def list_sessions(request: Request) -> Response:
    """GET /process/session: every session with its commands."""
    hub = _request_hub(request)
    return JSONResponse([s.to_json() for s in hub.sessions.sessions.values()])


async def get_session(request: Request) -> Response:
    """GET /process/session/{id}."""
    hub = _request_hub(request)
    return JSONResponse(hub.sessions.get(request.path_params["session_id"]).to_json())


async def delete_session(request: Request) -> Response:
    """DELETE /process/session/{id}: kills its shell; followers get a clean close."""
    hub = _request_hub(request)
    await hub.sessions.delete(request.path_params["session_id"])
    return Response(status_code=204)


async def execute_in_session(request: Request) -> Response:
    """POST /process/session/{id}/exec: 202 {cmdId} when async, else 200 with the output."""
    record = _record(request.app, request.path_params["sandbox_id"])
    hub = _hub(request.app, record)
    if request.path_params["session_id"] == ENTRYPOINT["session_id"]:
        raise BadRequest("can't execute command in entrypoint session")
    session = hub.sessions.get(request.path_params["session_id"])
    body = Body(await read_json(request), {"command", "runAsync", "async", "suppressInputEcho"})
    command_text = body.string("command", required=True, allow_empty=False, max_length=256 << 10)
    assert command_text is not None
    run_async = bool(body.boolean("runAsync", False) or body.boolean("async", False))
    body.boolean("suppressInputEcho", False)  # input is never echoed into the log here
    try:
        command = await session.execute(command_text)
    except (NotRunning, RuntimeError_) as error:
        raise _spawn_error(error) from None
    if run_async:
        return JSONResponse({"cmdId": command.id}, status_code=202)
    # Like /process/execute, a command the caller waits for is activity until it ends
    # (a background one is not: it could keep the sandbox from ever auto-stopping).
    with _engine(request.app).busy(record.id):
        await command.done.wait()
    prefix = {"cmdId": command.id, "exitCode": command.exit_code}
    handle = _open_log(command)
    return StreamingResponse(
        _closing(handle, _json_with(prefix, logs.json_logs(handle))),
        media_type="application/json",
    )


def _open_log(command: Any) -> IO[bytes]:
    """The command's log, opened now: a session deleted meanwhile is a 404, not a broken
    stream (an open file outlives its directory)."""
    try:
        return open(command.log.path, "rb")  # closed by _closing or the handler
    except FileNotFoundError:
        raise NotFound(f"the log of command {command.id} is gone") from None


async def _closing(handle: IO[bytes], pieces: Any) -> AsyncIterator[bytes]:
    """Yield ``pieces`` (sync or async), then close ``handle`` whatever happens."""
    try:
        if hasattr(pieces, "__aiter__"):
            async for piece in pieces:
                yield piece
        else:
            for piece in pieces:
                yield piece
                # Each piece is one bounded disk read; yielding keeps the loop fair.
                await asyncio.sleep(0)
    finally:
        handle.close()


def _json_with(prefix: dict[str, object], rest: Any) -> Iterator[bytes]:
    """Prepend fields to a streamed JSON object."""
    head = json.dumps(prefix)[:-1].encode() + b","
    first = True
    for piece in rest:
        if first:
            piece = head + piece[1:]  # replace the object's opening brace
            first = False
        yield piece


def _command(request: Request) -> Any:
    hub = _request_hub(request)
    session = hub.sessions.get(request.path_params["session_id"])
    return session, session.get(request.path_params["command_id"])


async def get_command(request: Request) -> Response:
    """GET /process/session/{id}/command/{cmd}: id, command and (once done) exitCode."""
    _, command = _command(request)
    return JSONResponse(command.to_json())


async def command_input(request: Request) -> Response:
    """POST /process/session/{id}/command/{cmd}/input {data}: write to its stdin."""
    if request.path_params["session_id"] == ENTRYPOINT["session_id"]:
        raise BadRequest("can't send input to entrypoint session")
    session, command = _command(request)
    body = Body(await read_json(request), {"data"})
    data = body.string("data", required=True, max_length=1 << 20)
    assert data is not None
    await session.send_input(command.id, data)
    return Response(status_code=204)


def _tail(query: Query) -> int | None:
    return query.integer("tail", None, minimum=0, maximum=1 << 40)


def _version(value: str | None) -> tuple[int, ...] | None:
    parts = (value or "").strip().lstrip("v").split(".")
    if len(parts) < 2 or not all(part.isdigit() for part in parts[:3]):
        return None
    return tuple(int(part) for part in parts[:3])


def _log_format(headers: Any, tokens: Sequence[str] = ()) -> tuple[bool, bool]:
    """(split, json), negotiated as the daemon does: the SDK version comes from the
    ``X-Daytona-SDK-Version`` header or a ``X-Daytona-SDK-Version~<v>`` subprotocol.

    Split (markers kept) from 0.27.0, or without a version when the client sends
    ``X-Daytona-Split-Output: true``; otherwise the markers are taken out. A JSON body
    for the non-follow GET needs 0.167.0; older or unversioned clients get plain text.
    """
    raw = headers.get("x-daytona-sdk-version")
    for token in tokens:
        if token.startswith(SDK_VERSION_PREFIX):
            raw = raw or token[len(SDK_VERSION_PREFIX) :]
    version = _version(raw)
    if version is None:
        split = headers.get("x-daytona-split-output", "").strip().lower() == "true"
        return split, False
    return version >= (0, 27, 0), version >= (0, 167, 0)


async def command_logs(request: Request) -> Response:
    """GET .../logs: {output, stdout, stderr} (or plain text for old clients), streamed
    from disk; ``tail=N`` starts at the last N lines."""
    _, command = _command(request)
    query = Query(request.query_params)
    tail = _tail(query)
    query.boolean("follow", False)
    split, as_json = _log_format(request.headers)
    handle = _open_log(command)
    offset = 0 if tail is None else logs.tail_offset(handle, tail)
    if as_json:
        body = logs.json_logs(handle, offset)
        return StreamingResponse(_closing(handle, body), media_type="application/json")
    body = logs.plain_logs(handle, offset, split=split)
    return StreamingResponse(_closing(handle, body), media_type="text/plain; charset=utf-8")


async def _deny(websocket: WebSocket, error: ApiError) -> None:
    """Refuse an upgrade with Daytona's JSON error body and status (404, 409, ...)."""
    body = error.body(websocket.url.path, iso(now()))
    await websocket.send_denial_response(JSONResponse(body, status_code=error.status))


async def follow_logs(websocket: WebSocket) -> None:
    """WebSocket .../logs?follow=true: marked frames, closed 1000 once the log drains."""
    try:
        app = websocket.app
        hub = _hub(app, _record(app, websocket.path_params["sandbox_id"]))
        session = hub.sessions.get(websocket.path_params["session_id"])
        command = session.get(websocket.path_params["command_id"])
        query = Query(websocket.query_params)
        follow = bool(query.boolean("follow", False))
        tail = _tail(query)
        tokens = _offered(websocket)
        split, _ = _log_format(websocket.headers, tokens)
        handle = _open_log(command)
    except ApiError as error:
        await _deny(websocket, error)
        return
    with handle:
        offset = 0 if tail is None else logs.tail_offset(handle, tail)
        version_token = next((t for t in tokens if t.startswith(SDK_VERSION_PREFIX)), None)
        await websocket.accept(subprotocol=version_token)

        async def send() -> None:
            frames = logs.stream_frames(
                command.log,
                follow=follow,
                offset=offset,
                is_live=lambda: not session.deleted,
                source=handle,
            )
            demuxer = None if split else logs.Demuxer()
            async for frame in frames:
                if demuxer is not None:  # combined mode: the markers are taken out
                    frame = b"".join(piece for _, piece in demuxer.feed(frame))
                    if not frame:
                        continue
                await websocket.send_bytes(frame)
            if demuxer is not None and (rest := demuxer.flush()):
                await websocket.send_bytes(rest[0][1])

        code = await _pump_until_disconnect(websocket, send())
    if code is not None:
        with contextlib.suppress(RuntimeError, OSError):
            await websocket.close(code)


async def _pump_until_disconnect(websocket: WebSocket, sender: Any) -> int | None:
    """Run ``sender`` while discarding what the client sends; return the close code to
    send (1000 when the sender finished, None when the client left)."""
    send_task = asyncio.ensure_future(sender)
    receive_task = asyncio.ensure_future(_drain_client(websocket))
    try:
        done, _ = await asyncio.wait({send_task, receive_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (send_task, receive_task):
            task.cancel()
        for task in (send_task, receive_task):
            with contextlib.suppress(BaseException):
                await task
    if send_task in done and send_task.exception() is None:
        return 1000
    if send_task in done:
        error = send_task.exception()
        if isinstance(error, WebSocketDisconnect | OSError):
            return None
        log.warning("log stream failed: %r", error)
        return 1011
    return None


async def _drain_client(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


# -- PTY ----------------------------------------------------------------------------


def _pty_env(record: SandboxRecord, envs: Mapping[str, str]) -> dict[str, str]:
    return {**BASE_ENV, "TERM": "xterm-256color", **record.env, **envs}


async def list_ptys(request: Request) -> Response:
    """GET /process/pty: {sessions: [PtySessionInfo]}."""
    hub = _request_hub(request)
    return JSONResponse({"sessions": [t.to_json() for t in hub.terminals.terminals.values()]})


async def create_pty(request: Request) -> Response:
    """POST /process/pty {id, cwd?, envs?, cols?, rows?, lazyStart?}: 201 {sessionId}."""
    record = _record(request.app, request.path_params["sandbox_id"])
    hub = _hub(request.app, record)
    body = Body(await read_json(request), {"id", "cwd", "envs", "cols", "rows", "lazyStart"})
    pty_id = check_id(body.raw("id"), "id")
    cols = check_size(body.integer("cols", 80), "cols", MAX_COLS)
    rows = check_size(body.integer("rows", 24), "rows", MAX_ROWS)
    envs = body.string_map("envs", env=True)
    lazy = bool(body.boolean("lazyStart", False))
    cwd = await check_cwd(request, record, body.string("cwd"))
    terminal = hub.terminals.create(
        pty_id, cols=cols, rows=rows, cwd=cwd, envs=envs, lazy_start=lazy
    )
    if not lazy:
        try:
            await hub.terminals.start(terminal, SHELL, _pty_env(record, envs))
        except (NotRunning, RuntimeError_, OSError) as error:
            raise _spawn_error(error) from None
    return JSONResponse({"sessionId": pty_id}, status_code=201)


def _terminal(request: Request) -> Terminal:
    return _request_hub(request).terminals.get(request.path_params["pty_id"])


async def get_pty(request: Request) -> Response:
    """GET /process/pty/{id}: PtySessionInfo."""
    return JSONResponse(_terminal(request).to_json())


async def resize_pty(request: Request) -> Response:
    """POST /process/pty/{id}/resize {cols, rows}: PtySessionInfo; 410 once exited."""
    terminal = _terminal(request)
    body = Body(await read_json(request), {"cols", "rows"})
    cols = check_size(body.integer("cols", required=True), "cols", MAX_COLS)
    rows = check_size(body.integer("rows", required=True), "rows", MAX_ROWS)
    terminal.resize(cols, rows)
    return JSONResponse(terminal.to_json())


async def delete_pty(request: Request) -> Response:
    """DELETE /process/pty/{id}: kill it (clients see 137); 200 {}."""
    hub = _request_hub(request)
    await hub.terminals.delete(request.path_params["pty_id"])
    return JSONResponse({})


def _offered(websocket: WebSocket) -> list[str]:
    raw = websocket.headers.get("sec-websocket-protocol", "")
    return [token.strip() for token in raw.split(",") if token.strip()]


def _envs_from_protocols(tokens: list[str]) -> dict[str, str]:
    """The env object the SDK sends as ``X-Daytona-Pty-Envs~<base64url JSON>``."""
    for token in tokens:
        if token.startswith(ENVS_PREFIX):
            encoded = token[len(ENVS_PREFIX) :]
            try:
                raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
                value = json.loads(raw)
            except (binascii.Error, ValueError, RecursionError):
                message = "the X-Daytona-Pty-Envs subprotocol is not base64url JSON"
                raise BadRequest(message) from None
            return Body({"envs": value}, {"envs"}).string_map("envs", env=True)
    return {}


def _subprotocol(tokens: list[str]) -> str | None:
    if EXIT_CONTROL in tokens:
        return EXIT_CONTROL
    return next((t for t in tokens if t.startswith(SDK_VERSION_PREFIX)), None)


async def connect_pty(websocket: WebSocket) -> None:
    """WebSocket /process/pty/{id}/connect: attach to a running terminal.

    Query ``replay=raw`` sends the recent output first (up to 64 KiB), ``replay=screen``
    a clean redraw of the current screen; by default nothing is replayed, as Daytona.
    """
    try:
        app = websocket.app
        record = _record(app, websocket.path_params["sandbox_id"])
        hub = _hub(app, record)
        terminal = hub.terminals.get(websocket.path_params["pty_id"])
        query = Query(websocket.query_params)
        replay = query.string("replay", "none")
        if replay not in ("none", "raw", "screen"):
            raise BadRequest("replay must be none, raw or screen")
        tokens = _offered(websocket)
        _envs_from_protocols(tokens)  # only validated: the terminal already has its env
        if terminal.lazy_start and terminal.process is None and terminal.exit_code is None:
            await hub.terminals.start(terminal, SHELL, _pty_env(record, terminal.envs))
    except ApiError as error:
        await _deny(websocket, error)
        return
    except (NotRunning, RuntimeError_, OSError) as error:
        await _deny(websocket, _spawn_error(error))
        return
    await _serve_terminal(websocket, terminal, tokens, replay, _toucher(app, record))


async def create_connect_pty(websocket: WebSocket) -> None:
    """WebSocket /process/pty/create-connect?id=&cols=&rows=&cwd=: create, then attach."""
    try:
        app = websocket.app
        record = _record(app, websocket.path_params["sandbox_id"])
        hub = _hub(app, record)
        query = Query(websocket.query_params)
        pty_id = check_id(query.string("id", required=True), "id")
        cols = check_size(query.integer("cols", 80), "cols", MAX_COLS)
        rows = check_size(query.integer("rows", 24), "rows", MAX_ROWS)
        tokens = _offered(websocket)
        envs = _envs_from_protocols(tokens)
        cwd = await check_cwd(websocket, record, query.string("cwd"))  # type: ignore[arg-type]
        terminal = hub.terminals.create(pty_id, cols=cols, rows=rows, cwd=cwd, envs=envs)
        await hub.terminals.start(terminal, SHELL, _pty_env(record, envs))
    except ApiError as error:
        await _deny(websocket, error)
        return
    except (NotRunning, RuntimeError_, OSError) as error:
        await _deny(websocket, _spawn_error(error))
        return
    await _serve_terminal(websocket, terminal, tokens, "none", _toucher(app, record))


def _toucher(app: Any, record: SandboxRecord) -> Callable[[], None]:
    """Typing in a terminal is activity: it keeps auto-stop away (rate-limited by touch)."""
    engine = _engine(app)

    def touch() -> None:
        with contextlib.suppress(Exception):  # the sandbox may be going away meanwhile
            engine.touch(record.id)

    return touch


async def _serve_terminal(
    websocket: WebSocket,
    terminal: Terminal,
    tokens: list[str],
    replay: str,
    touch: Callable[[], None],
) -> None:
    """Relay one client: output frames out, input frames in, exit report at the end."""
    await websocket.accept(subprotocol=_subprotocol(tokens))
    exit_control = EXIT_CONTROL in tokens
    # Attach and take the replay in one step (no await between): the replay ends
    # exactly where the live output begins, nothing missed and nothing twice.
    attachment = terminal.attach()
    recent = terminal.replay_raw() if replay != "none" else b""
    await websocket.send_text(json.dumps({"type": "control", "status": "connected"}))
    if replay == "raw" and recent:
        await websocket.send_bytes(recent)
    elif replay == "screen":
        # pyte takes a while on 64 KiB; keep the event loop free meanwhile.
        screen = await asyncio.to_thread(render_screen, recent, terminal.cols, terminal.rows)
        await websocket.send_bytes(screen)

    async def send() -> tuple[int, str]:
        while (frame := await attachment.next()) is not None:
            await websocket.send_bytes(frame)
        if attachment.overflowed:
            return 1008, "slow consumer"
        assert attachment.exited is not None
        code, reason = attachment.exited
        report: dict[str, object] = {"exitCode": code}
        if reason:
            report["exitReason"] = reason
        if exit_control:
            await websocket.send_text(json.dumps({"type": "control", "status": "exited", **report}))
        return (1000 if code == 0 else 1011), json.dumps(report)

    async def receive() -> tuple[int, str] | None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            data = message.get("bytes")
            if data is None:
                data = (message.get("text") or "").encode()
            if len(data) > MAX_INPUT_FRAME:
                return 1009, f"input frames are limited to {MAX_INPUT_FRAME} bytes"
            touch()
            try:
                await terminal.write(data)
            except ApiError:
                # Exited: the sender reports the exit code; keep reading until it does.
                await asyncio.sleep(0.05)

    send_task = asyncio.ensure_future(send())
    receive_task = asyncio.ensure_future(receive())
    try:
        done, _ = await asyncio.wait({send_task, receive_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        terminal.detach(attachment)
        for task in (send_task, receive_task):
            task.cancel()
        for task in (send_task, receive_task):
            with contextlib.suppress(BaseException):
                await task
    close: tuple[int, str] | None = None
    for task in (send_task, receive_task):
        if task in done and not task.cancelled() and task.exception() is None:
            close = task.result() or close
            break
    if close is not None and websocket.application_state != WebSocketState.DISCONNECTED:
        with contextlib.suppress(RuntimeError, OSError):
            await websocket.close(*close)


def _entrypoint[C: (Request, WebSocket), R](
    handler: Callable[[C], Awaitable[R]],
) -> Callable[[C], Awaitable[R]]:
    """``handler`` for the entrypoint session's own routes, which name no ids."""

    async def entrypoint(connection: C) -> R:
        connection.scope["path_params"].update(ENTRYPOINT)
        return await handler(connection)

    return entrypoint


def routes() -> list[BaseRoute]:
    """The session and PTY routes, mounted at /toolbox next to the other toolbox routes."""
    base = "/{sandbox_id}/process"
    session = f"{base}/session/{{session_id}}"
    command = f"{session}/command/{{command_id}}"
    pty = f"{base}/pty/{{pty_id}}"
    return [
        Route(f"{base}/session", create_session, methods=["POST"]),
        Route(f"{base}/session", list_sessions, methods=["GET"]),
        Route(f"{base}/session/entrypoint", _entrypoint(get_session), methods=["GET"]),
        Route(f"{base}/session/entrypoint/logs", _entrypoint(command_logs), methods=["GET"]),
        WebSocketRoute(f"{base}/session/entrypoint/logs", _entrypoint(follow_logs)),
        Route(session, get_session, methods=["GET"]),
        Route(session, delete_session, methods=["DELETE"]),
        Route(f"{session}/exec", execute_in_session, methods=["POST"]),
        Route(command, get_command, methods=["GET"]),
        Route(f"{command}/input", command_input, methods=["POST"]),
        Route(f"{command}/logs", command_logs, methods=["GET"]),
        WebSocketRoute(f"{command}/logs", follow_logs),
        Route(f"{base}/pty", list_ptys, methods=["GET"]),
        Route(f"{base}/pty", create_pty, methods=["POST"]),
        WebSocketRoute(f"{base}/pty/create-connect", create_connect_pty),
        Route(pty, get_pty, methods=["GET"]),
        Route(pty, delete_pty, methods=["DELETE"]),
        Route(f"{pty}/resize", resize_pty, methods=["POST"]),
        WebSocketRoute(f"{pty}/connect", connect_pty),
    ]


__all__ = ["ProcessHub", "routes"]
