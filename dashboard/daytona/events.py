"""Daytona's push stream: the Socket.IO events at `<api>/socket.io/`.

Daytona (and the embedded engine) broadcast every sandbox change to the
organization's room. Following it costs one connection per process instead of
a poll a second, and changes arrive as they happen. It is optional: a Daytona
without it, or a process without python-socketio's aiohttp transport, falls
back to polling, which the caller does when `follow_sandbox_events` raises.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings

from dashboard.daytona.client import Unavailable, api_key, api_url, auth_header

log = logging.getLogger(__name__)

SandboxEvent = Callable[[str, dict[str, Any]], Awaitable[None]]
# Event name -> what it means for the sandbox it carries.
_KINDS = {
    "sandbox.created": "created",
    "sandbox.state.updated": "changed",
    "sandbox.desired-state.updated": "changed",
}
# Sent with a JWT (a connection's kind "jwt"): Daytona's REST API reads this header; its
# Socket.IO gateway reads the organization from the handshake's query instead.
ORGANIZATION_HEADER = "X-Daytona-Organization-ID"


def _handshake() -> tuple[dict[str, str], str]:
    """The sign-in headers every other call sends, and the query naming the organization."""
    headers = dict(auth_header())
    organization = next(
        (value for name, value in headers.items() if name.lower() == ORGANIZATION_HEADER.lower()),
        "",
    )
    return headers, urlencode({"organizationId": organization}) if organization else ""


async def follow_sandbox_events(on_event: SandboxEvent, on_connect: Callable[[], None]) -> None:
    """Call `on_event(kind, sandbox)` for each sandbox event until the stream ends.

    `kind` is "created" or "changed"; `sandbox` is Daytona's Sandbox DTO. Raises
    Unavailable when the stream cannot be opened; returns when it closes.
    """
    try:
        import aiohttp
        import socketio
    except ImportError:
        raise Unavailable("No Socket.IO client (python-socketio with aiohttp).") from None
    # Our own HTTP session, so closing it is ours too (the library leaves its own open).
    async with aiohttp.ClientSession() as session:
        await _follow(socketio, session, on_event, on_connect)


async def _follow(socketio, session, on_event: SandboxEvent, on_connect) -> None:
    parts = urlsplit(api_url())
    headers, query = _handshake()
    origin = f"{parts.scheme}://{parts.netloc}" + (f"?{query}" if query else "")
    path = parts.path.rstrip("/") + "/socket.io"
    sio = socketio.AsyncClient(
        reconnection=False, logger=False, engineio_logger=False, http_session=session
    )

    def relay(name: str):
        async def handler(data: Any) -> None:
            sandbox = data.get("sandbox", data) if isinstance(data, dict) else None
            if isinstance(sandbox, dict) and sandbox.get("id"):
                await on_event(_KINDS[name], sandbox)

        return handler

    for name in _KINDS:
        sio.on(name, relay(name))
    try:
        await sio.connect(
            origin,
            socketio_path=path,
            transports=["websocket"],
            headers=headers,
            auth={"token": api_key()},
            wait_timeout=settings.DAYTONA_TIMEOUT,
        )
    except Exception as error:  # any failure to open it means: poll instead
        # The message names the host at most, never the key.
        raise Unavailable(f"Daytona's event stream is not available ({error}).") from None
    on_connect()
    try:
        await sio.wait()
    finally:
        await sio.disconnect()
