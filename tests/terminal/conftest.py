import json
import time
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from dashboard.accounts.access import OWNER_LABEL
from tests.conftest import client_for

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


@pytest.fixture
def make_sandbox(daytona_engine):
    """Create started sandboxes straight through the engine's API; deleted after."""
    created: list[str] = []

    def make(owner: str = "mel") -> dict:
        labels = {OWNER_LABEL: owner} if owner else {}
        with daytona_engine.client() as http:
            response = http.post(
                "/sandbox", json={"name": f"t-{uuid.uuid4().hex[:10]}", "labels": labels}
            )
        assert response.status_code == 200, response.text
        created.append(response.json()["id"])
        return response.json()

    yield make
    with daytona_engine.client() as http:
        for sandbox_id in created:
            http.delete(f"/sandbox/{sandbox_id}")


def new_session() -> str:
    return uuid.uuid4().hex


class Term:
    """A test browser terminal: sends keys, collects output, acknowledges what it read."""

    def __init__(self, communicator: WebsocketCommunicator, ack: bool = True) -> None:
        self.ws = communicator
        self.output = b""
        self.controls: list[dict] = []
        self.ack = ack
        self.close_code: int | None = None

    async def keys(self, text: str | bytes) -> None:
        await self.ws.send_to(bytes_data=text.encode() if isinstance(text, str) else text)

    async def control(self, message: dict) -> None:
        await self.ws.send_to(text_data=json.dumps(message))

    async def next(self) -> dict | bytes | None:
        """One message: bytes, a control dict, or None once closed."""
        message = await self.ws.receive_output(5)
        if message["type"] == "websocket.close":
            self.close_code = message.get("code")
            return None
        if message.get("bytes") is not None:
            data = message["bytes"]
            self.output += data
            if self.ack:
                await self.control({"type": "ack", "bytes": len(data)})
            return data
        control = json.loads(message["text"])
        self.controls.append(control)
        return control

    async def until(self, predicate, seconds: float = 10) -> None:
        deadline = time.monotonic() + seconds
        while not predicate(self):
            assert time.monotonic() < deadline, f"timed out; output tail: {self.output[-400:]!r}"
            # receive_output's own timeout would cancel the application: wait politely.
            if await self.ws.receive_nothing(timeout=0.05, interval=0.005):
                continue
            if await self.next() is None and not predicate(self):
                raise AssertionError(f"closed {self.close_code}: {self.controls}")

    async def until_output(self, needle: bytes, seconds: float = 10) -> None:
        await self.until(lambda t: needle in t.output, seconds)

    async def until_control(self, kind: str, seconds: float = 10) -> dict:
        await self.until(lambda t: any(c.get("type") == kind for c in t.controls), seconds)
        return next(c for c in self.controls if c.get("type") == kind)

    async def until_closed(self, seconds: float = 10) -> int | None:
        deadline = time.monotonic() + seconds
        while self.close_code is None:
            assert time.monotonic() < deadline, "not closed"
            if not await self.ws.receive_nothing(timeout=0.05, interval=0.005):
                await self.next()
        return self.close_code


async def open_terminal(
    user, sandbox_id: str, session: str, *, cols: int = 80, rows: int = 24, ack: bool = True
) -> tuple[Term, bool]:
    # Imported late: building the ASGI app at collection would freeze the static storage.
    from dashboard.asgi import application

    headers = [ORIGIN, (b"host", b"127.0.0.1:8000")]
    if user is not None:
        client = await database_sync_to_async(client_for)(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    path = f"/ws/sandboxes/{sandbox_id}/terminal/{session}/?cols={cols}&rows={rows}"
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=15)
    term = Term(communicator, ack=ack)
    if not connected:
        term.close_code = code
    return term, connected
