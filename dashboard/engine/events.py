"""The Socket.IO event stream Daytona serves at ``/api/socket.io/``.

Clients connect with Engine.IO v4 (the SDK uses the websocket transport only) and
authenticate in the CONNECT payload, ``{"token": <api key>}``; there is no header
on the upgrade. The stream is push-only: every connected client receives every
event of the (single) organization, in the order the engine made the changes.

Events, with the same DTOs as the REST API:

- ``sandbox.created`` → Sandbox
- ``sandbox.state.updated`` → ``{sandbox, oldState, newState}``
- ``sandbox.desired-state.updated`` → ``{sandbox, oldDesiredState, newDesiredState}``
- ``snapshot.created`` / ``snapshot.removed`` → Snapshot
- ``snapshot.state.updated`` → ``{snapshot, oldState, newState}``
- ``volume.created`` → Volume
- ``volume.state.updated`` → ``{volume, oldState, newState}``
- ``volume.lastUsedAt.updated`` → Volume
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable
from typing import Any

import socketio
from starlette.types import ASGIApp, Receive, Scope, Send

from dashboard.engine.api import sandbox_payload
from dashboard.engine.lifecycle import Engine
from dashboard.engine.store import SandboxRecord

log = logging.getLogger("sandbar.engine")

SOCKETIO_PATH = "/api/socket.io"
EVENT_NAMES = (
    "sandbox.created",
    "sandbox.state.updated",
    "sandbox.desired-state.updated",
    "snapshot.created",
    "snapshot.state.updated",
    "snapshot.removed",
    "volume.created",
    "volume.state.updated",
    "volume.lastUsedAt.updated",
)
# A client that stops reading must not make the engine hold events without bound.
QUEUE_LIMIT = 10_000

# Builds an event payload for clients that reached the engine at a given toolbox URL
# (the Sandbox DTO carries ``toolboxProxyUrl``, which depends on how it was reached).
PayloadBuilder = Callable[[str], Any]


def _toolbox_base(environ: dict[str, Any]) -> str:
    scope = environ.get("asgi.scope", {})
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    host = environ.get("HTTP_HOST")
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scheme}://{host}/toolbox"


class EventHub:
    """Fan engine changes out to every authenticated Socket.IO client, in order."""

    def __init__(self, api_key: str) -> None:
        self.expected = api_key.encode()
        self.server = socketio.AsyncServer(
            async_mode="asgi", logger=False, engineio_logger=False, ping_interval=25
        )
        self.asgi = socketio.ASGIApp(self.server, socketio_path=SOCKETIO_PATH.lstrip("/"))
        self.server.on("connect", self._connect)
        self.server.on("disconnect", self._disconnect)
        self._bases: dict[str, str] = {}  # sid -> toolbox URL it reached the engine at
        self._queue: asyncio.Queue[tuple[str, PayloadBuilder]] | None = None
        self._pump: asyncio.Task[None] | None = None

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.expected):
            raise socketio.exceptions.ConnectionRefusedError("Invalid API key")
        base = _toolbox_base(environ)
        self._bases[sid] = base
        await self.server.enter_room(sid, base)

    async def _disconnect(self, sid: str, *args: Any) -> None:
        self._bases.pop(sid, None)

    def publish(self, event: str, build: PayloadBuilder) -> None:
        """Queue an event; ``build(toolbox_url)`` makes its payload at send time."""
        if self._queue is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop: the engine is not serving, nobody can listen
            self._queue = asyncio.Queue(QUEUE_LIMIT)
            self._pump = asyncio.create_task(self._run(), name="engine-events")
        if self._queue.full():
            log.warning("event queue full, dropping %s", event)
            return
        self._queue.put_nowait((event, build))

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            event, build = await self._queue.get()
            for base in set(self._bases.values()):
                try:
                    await self.server.emit(event, build(base), room=base)
                except Exception:  # one bad payload must not stop the stream
                    log.exception("could not emit %s", event)

    async def close(self) -> None:
        """Stop the pump and drop the clients."""
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        for sid in list(self._bases):
            with contextlib.suppress(Exception):
                await self.server.disconnect(sid)


class EventsGate:
    """Route ``/api/socket.io/`` to the Socket.IO server ahead of the bearer check."""

    def __init__(self, app: ASGIApp, hub: EventHub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and (
            scope["path"] == SOCKETIO_PATH or scope["path"].startswith(SOCKETIO_PATH + "/")
        ):
            await self.hub.asgi(scope, receive, send)
            return
        await self.app(scope, receive, send)


def wire(engine: Engine, hub: EventHub) -> None:
    """Publish every engine change on the hub, whoever made it (API call or timer)."""

    def observe(event: str, *details: Any) -> None:
        if event == "sandbox.created":
            (created,) = details
            hub.publish(event, lambda base: sandbox_payload(created, engine, base))
        elif event == "sandbox.state.updated":
            record, old, new = details
            assert isinstance(record, SandboxRecord)
            hub.publish(
                event,
                lambda base: {
                    "sandbox": sandbox_payload(record, engine, base),
                    "oldState": old,
                    "newState": new,
                },
            )
        elif event == "sandbox.desired-state.updated":
            record, old, new = details
            hub.publish(
                event,
                lambda base: {
                    "sandbox": sandbox_payload(record, engine, base),
                    "oldDesiredState": old,
                    "newDesiredState": new,
                },
            )
        else:  # snapshots and volumes hand over a ready payload builder
            (build,) = details
            hub.publish(event, build)

    engine.observers.append(observe)
