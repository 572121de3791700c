"""What the terminal and logs consumers share."""

from collections.abc import Awaitable, Callable
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.sessions import InstanceSessionWrapper

Send = Callable[[dict[str, Any]], Awaitable[None]]


def frame_send(send: Send) -> Send:
    """The ASGI server's own send, from under Channels' session wrappers.

    The session middleware wraps send to save the session on an HTTP response; it
    never does anything for a WebSocket frame, yet looks at the (lazy) session on
    every one. Relayed bytes go straight to the server instead.
    """
    while isinstance(owner := getattr(send, "__self__", None), InstanceSessionWrapper):
        send = owner.real_send
    return send


class RelayConsumer(AsyncWebsocketConsumer):
    """A WebSocket consumer whose incoming frames never touch the database."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections (a hop to a thread) before every
        # message; a keystroke or an ack touches no database, so it skips that.
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
            return
        await super().dispatch(message)
