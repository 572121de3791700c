"""The event stream signs in to a connection as every other call does.

With a JWT, Daytona needs the organization: REST calls send it as a header, and the
Socket.IO gateway of Daytona's API joins the room of the organization named in the
handshake's query. The embedded engine ignores both (it has one organization), so a
Socket.IO server of our own on loopback records what the handshake carried; the engine
shows the stream still opens with them.
"""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest
import socketio
import uvicorn
from asgiref.sync import sync_to_async

from dashboard import daytona
from dashboard.connections.active import target_of
from dashboard.connections.models import Connection, Kind
from dashboard.daytona import client

pytestmark = pytest.mark.django_db(transaction=True)
ORGANIZATION = "org-stream-7"


def _jwt_connection(url: str, secret: str) -> Connection:
    connection = Connection(name="jwt", api_url=url, kind=Kind.JWT, organization_id=ORGANIZATION)
    connection.set_secret(secret)
    connection.save()
    return connection


@contextlib.asynccontextmanager
async def recording_gateway() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A Socket.IO server at <url>/socket.io that records each handshake and accepts it."""
    seen: list[dict[str, Any]] = []
    server = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)

    @server.on("connect")
    async def record(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        seen.append(
            {
                "organization_header": environ.get("HTTP_X_DAYTONA_ORGANIZATION_ID"),
                "authorization": environ.get("HTTP_AUTHORIZATION"),
                "query": parse_qs(environ.get("QUERY_STRING", "")),
                "auth": auth,
            }
        )

    app = socketio.ASGIApp(server, socketio_path="api/socket.io")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    gateway = uvicorn.Server(config)
    task = asyncio.create_task(gateway.serve())
    while not gateway.started:
        assert not task.done(), "the recording gateway did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/api", seen
    finally:
        gateway.should_exit = True
        await task


async def _connects(target: client.Target) -> bool:
    """Open the stream aimed at `target`, wait for it to connect, then let it go."""
    connected = asyncio.Event()

    async def ignore(kind: str, sandbox: dict[str, Any]) -> None:
        pass

    with client.aimed_at(target):
        stream = asyncio.create_task(daytona.follow_sandbox_events(ignore, connected.set))
    try:
        await asyncio.wait_for(connected.wait(), 10)
        return True
    finally:
        stream.cancel()
        with contextlib.suppress(asyncio.CancelledError, daytona.Unavailable):
            await stream


async def test_a_jwt_connections_stream_names_its_organization_in_the_handshake() -> None:
    async with recording_gateway() as (url, seen):
        connection = await sync_to_async(_jwt_connection)(url, "jwt-secret-1")
        assert await _connects(target_of(connection))
    assert len(seen) == 1
    handshake = seen[0]
    assert handshake["organization_header"] == ORGANIZATION
    assert handshake["query"].get("organizationId") == [ORGANIZATION]
    assert handshake["auth"] == {"token": "jwt-secret-1"}
    assert handshake["authorization"] == "Bearer jwt-secret-1"


async def test_an_api_key_connections_stream_names_no_organization() -> None:
    async with recording_gateway() as (url, seen):
        connection = Connection(name="key", api_url=url)
        connection.set_secret("key-secret-1")
        await connection.asave()
        assert await _connects(target_of(connection))
    assert seen[0]["organization_header"] is None
    assert "organizationId" not in seen[0]["query"]


async def test_the_engine_takes_a_jwt_connections_stream_with_the_organization(
    daytona_engine,
) -> None:
    connection = await sync_to_async(_jwt_connection)(
        daytona_engine.api_url, daytona_engine.api_key
    )
    assert await _connects(target_of(connection))
