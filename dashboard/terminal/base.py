"""What the terminal and logs consumers share."""

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import Http404

from dashboard import daytona
from dashboard.accounts.access import terminal_access
from dashboard.accounts.liveness import GONE, AccountWatch, Ended
from dashboard.sandboxes import live
from dashboard.sandboxes.actions import find_sandbox

NOT_ALLOWED = 4403
NOT_FOUND = 4404
UNAVAILABLE = 4503


class RelayConsumer(AsyncWebsocketConsumer):
    """A WebSocket consumer that relays one sandbox's toolbox stream, built on Channels'
    public consumer API only (its dispatch, its send)."""

    user: Any
    sandbox: daytona.Sandbox
    account: AccountWatch | None = None
    # What the page says when the person loses the right while the socket is open.
    no_longer_allowed = "You may no longer use this sandbox's terminal and logs."

    async def _open_sandbox(self, sandbox_id: str, not_allowed: str) -> bool:
        """Sets self.sandbox if the user may use its toolbox; else refuses and says False."""
        try:
            self.sandbox, _ = await find_sandbox(self.user, sandbox_id)
        except (daytona.NotFound, Http404):
            await self._refuse(NOT_FOUND, "No such sandbox.")
            return False
        except daytona.DaytonaError as error:
            await self._refuse(UNAVAILABLE, error.message)
            return False
        if not terminal_access(self.user, self.sandbox.labels).act:
            await self._not_allowed()
            await self._refuse(NOT_ALLOWED, not_allowed)
            return False
        return True

    async def _watch_account(self) -> None:
        """From now on, end this socket when its sign-in or its access to the sandbox ends."""
        self.account = AccountWatch(self.scope, self._recheck, self._revoke, self.sandbox.id)
        await self.account.start()
        self.followed = await live.follow(self.sandbox.id, self.sandbox.labels)

    async def _stop_watching(self) -> None:
        account, self.account = self.account, None
        if account is not None:
            await account.stop()
        followed, self.followed = getattr(self, "followed", None), None
        if followed is not None:
            await live.unfollow(followed)

    async def _recheck(self, user: Any, message: dict[str, Any]) -> Ended | None:
        self.user = user
        if message.get("type") == "sandbox.changed":
            if message.get("gone"):
                return Ended(GONE, "The sandbox was deleted.")
            data = message.get("sandbox")
            try:
                fresh = daytona.Sandbox.from_api(data) if data else None
                self.sandbox = fresh or await daytona.get_sandbox(self.sandbox.id)
            except daytona.NotFound:
                return Ended(GONE, "The sandbox was deleted.")
            except daytona.DaytonaError:
                pass  # Daytona cannot say now: judge by the labels known, and look again later
        if not terminal_access(user, self.sandbox.labels).act:
            return Ended(NOT_ALLOWED, self.no_longer_allowed)
        return None

    async def _revoke(self, ended: Ended) -> None:
        """Close with the reason shown on the page, and stop relaying at once."""
        await self._error(ended.reason)
        await self.close(code=ended.code, reason=ended.reason)
        await self._release()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Also when the server cancels us (shutdown), which skips disconnect(): no
            # relay task or upstream socket may outlive the consumer.
            await self._release()

    async def _release(self) -> None:
        """Stop every relay task and upstream connection (the socket is closing)."""
        raise NotImplementedError

    async def _not_allowed(self) -> None:
        """Called before refusing someone who may see the sandbox but not use it."""

    async def _refuse(self, code: int, message: str) -> None:
        # Accepted only to say why: a refused handshake reaches the browser as a bare 1006.
        await self.accept()
        await self._error(message)
        await self.close(code=code)

    async def _error(self, message: str) -> None:
        raise NotImplementedError

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections (a hop to a worker thread) before
        # every message. A frame from the browser (a keystroke, an ack) touches no
        # database, and whatever does goes through database_sync_to_async, which closes
        # them itself: so frames skip that hop, which would add about 45 % to keystroke
        # echo (bench/terminal.py, 2026-12-03). Every other message goes Channels' way.
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
            return
        await super().dispatch(message)
