from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.template.loader import render_to_string

from dashboard import daytona
from dashboard.accounts.access import sandbox_access
from dashboard.accounts.liveness import AccountWatch, Ended
from dashboard.core.websocket import POLICY_VIOLATION, BadFrame, close_for, parse_json_frame
from dashboard.sandboxes import live
from dashboard.sandboxes.rows import sandbox_row
from dashboard.sandboxes.views import row_for

# Application close codes (4000-4999): the browser must not retry these.
NOT_ALLOWED = 4403
CONTROL_MAX = 1024


class SandboxesConsumer(AsyncJsonWebsocketConsumer):
    """Pushes sandbox state changes, rendered for this person, to the list and sandbox pages."""

    group: str | None = None
    watch: tuple[int, str] | None = None
    account: AccountWatch | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not sandbox_access(user).see:
            await self.close(code=NOT_ALLOWED)
            return
        self.user = user
        self.group = live.group_name()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.watch = await live.join()
        if not live.answering(self.watch):
            # Everyone else heard it when it stopped answering; this page has just come.
            await self.send_json(
                {"type": "sandbox.unavailable", "message": "Daytona is not answering."}
            )
        self.account = AccountWatch(self.scope, self._recheck, self._revoke)
        await self.account.start()

    async def _recheck(self, user, message: dict) -> Ended | None:
        # Rows are rendered for the person as they are now (a new role, new buttons).
        self.user = user
        if not sandbox_access(user).see:
            return Ended(NOT_ALLOWED, "You may no longer see the sandboxes.")
        return None

    async def _revoke(self, ended: Ended) -> None:
        await self.send_json({"type": "ended", "code": ended.code, "message": ended.reason})
        await self.close(code=ended.code, reason=ended.reason)

    async def disconnect(self, code: int) -> None:
        account, self.account = self.account, None
        if account is not None:
            await account.stop()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None
        if self.watch is not None:
            await live.leave(self.watch)
            self.watch = None

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Push only: the page may ping; anything else is a client this socket is not for.
        try:
            message = parse_json_frame(text_data, CONTROL_MAX)
            if message["type"] != "ping":
                raise BadFrame(POLICY_VIOLATION, "This socket only sends; it takes pings.")
        except BadFrame as bad:
            await close_for(self, bad)
            return
        await self.send_json({"type": "pong"})

    async def _send_sandbox(self, kind: str, data: dict) -> None:
        try:
            sandbox = daytona.Sandbox.from_api(data)
        except daytona.DaytonaError:
            return
        if not sandbox_access(self.user, sandbox.labels).see:
            return
        row = row_for(self.user, sandbox)
        await self.send_json(
            {
                "type": kind,
                "id": sandbox.id,
                "name": sandbox.name,
                "state": sandbox.state,
                "row": sandbox_row(row),
                "head": render_to_string("sandboxes/_head.html", {"row": row}),
            }
        )

    async def sandbox_changed(self, event: dict) -> None:
        await self._send_sandbox("sandbox.changed", event["sandbox"])

    async def sandbox_created(self, event: dict) -> None:
        await self._send_sandbox("sandbox.created", event["sandbox"])

    async def sandbox_removed(self, event: dict) -> None:
        await self.send_json(
            {"type": "sandbox.removed", "id": event["id"], "name": event.get("name", "")}
        )

    async def sandbox_unavailable(self, event: dict) -> None:
        await self.send_json({"type": "sandbox.unavailable", "message": event["message"]})

    async def sandbox_available(self, event: dict) -> None:
        await self.send_json({"type": "sandbox.available"})
