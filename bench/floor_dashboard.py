"""The dashboard's floor for bench/load.py: its stack relaying bytes and nothing else.

Served by uvicorn with `manage.py up`'s options (bench/serving.py), Django and
Channels as dashboard/asgi.py sets them up (AuthMiddlewareStack, URLRouter), and one
consumer at the terminal's path that opens the toolbox WebSocket with the client
library and options of dashboard/daytona/streams.py (here to bench/floor_engine.py),
says hello, then relays: output frames to the browser, input frames to the toolbox.
No sandbox lookup, no access check, no shell record, no flow control (acks are read
and dropped), no audit.

    uvicorn floor_dashboard:application (with SANDBAR_FLOOR_ENGINE=127.0.0.1:PORT)
"""

import asyncio
import contextlib
import json
import os
import resource
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
django_http = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from dashboard.daytona.streams import (  # noqa: E402
    EXIT_CONTROL,
    HANDSHAKE_SECONDS,
    PING_SECONDS,
    RECEIVE_QUEUE,
)

ENGINE = os.environ.get("SANDBAR_FLOOR_ENGINE", "127.0.0.1:0")


class RelayFloor(AsyncWebsocketConsumer):
    """Bytes both ways between a browser and the toolbox, nothing else."""

    upstream: ClientConnection | None = None
    pump: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        url = (
            f"ws://{ENGINE}/toolbox/{kwargs['sandbox_id']}/process/pty/"
            f"sandbar-{kwargs['session']}/connect?replay=screen"
        )
        self.upstream = await connect(
            url,
            additional_headers={"Authorization": "Bearer floor"},
            subprotocols=[EXIT_CONTROL],  # type: ignore[list-item]
            open_timeout=HANDSHAKE_SECONDS,
            ping_interval=PING_SECONDS,
            ping_timeout=PING_SECONDS,
            max_size=1 << 20,
            max_queue=RECEIVE_QUEUE,
            compression=None,
        )
        await self.upstream.recv()  # "connected"
        await self.accept()
        await self.send(text_data=json.dumps({"type": "hello", "session": kwargs["session"]}))
        self.pump = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        assert self.upstream is not None
        with contextlib.suppress(ConnectionClosed, OSError):
            async for message in self.upstream:
                if isinstance(message, bytes):
                    await self.send(bytes_data=message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if bytes_data is not None and self.upstream is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.upstream.send(bytes_data)

    async def disconnect(self, code: int) -> None:
        if self.pump is not None:
            self.pump.cancel()
            with contextlib.suppress(BaseException):
                await self.pump
        if self.upstream is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.upstream.close(), 2)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # As the terminal's consumer (dashboard/terminal/base.py): frames skip Channels'
        # per-message hop to a thread to close stale database connections.
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
            return
        await super().dispatch(message)


# As dashboard/asgi.py does: a descriptor per browser and one per toolbox socket.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _hard != resource.RLIM_INFINITY and _soft < _hard:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
router = ProtocolTypeRouter(
    {
        "http": django_http,  # the bench waits on /healthz
        "websocket": AuthMiddlewareStack(
            URLRouter(
                [
                    re_path(
                        r"^ws/sandboxes/(?P<sandbox_id>[^/]+)/terminal/(?P<session>[^/]+)/$",
                        RelayFloor.as_asgi(),
                    )
                ]
            )
        ),
    }
)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The router; uvicorn runs with --lifespan on (as `manage.py up`), and there is
    nothing to start."""
    if scope["type"] != "lifespan":
        await router(scope, receive, send)
        return
    while True:
        message = await receive()
        await send({"type": f"{message['type']}.complete"})
        if message["type"] == "lifespan.shutdown":
            return
