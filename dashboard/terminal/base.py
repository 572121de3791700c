"""What the terminal and logs consumers share."""

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer


class RelayConsumer(AsyncWebsocketConsumer):
    """A WebSocket consumer whose incoming frames never touch the database."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections (a hop to a thread) before every
        # message; a keystroke or an ack touches no database, so it skips that.
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
            return
        await super().dispatch(message)
