"""Live streams follow the person's connection: one shared watch per connection."""

import asyncio
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from dashboard.asgi import application
from dashboard.connections.active import SESSION_KEY
from dashboard.sandboxes import live
from tests.conftest import client_for
from tests.connections.test_switching import SECRET, _connection, recorder  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://127.0.0.1:8000")


def _signed_in_cookie(user, connection_pk: int | None) -> bytes:
    client = client_for(user)
    if connection_pk is not None:
        session = client.session
        session[SESSION_KEY] = connection_pk
        session.save()
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def _open(cookie: bytes) -> WebsocketCommunicator:
    headers = [ORIGIN, (b"host", b"127.0.0.1:8000"), (b"cookie", cookie)]
    communicator = WebsocketCommunicator(application, "/ws/sandboxes/", headers=headers)
    connected, _ = await communicator.connect(timeout=20)  # a loaded machine
    assert connected
    return communicator


async def test_a_live_list_watches_the_connection_its_person_chose_apart_from_the_default(
    daytona_engine,
    admin_user,
    member_user,
    recorder,  # noqa: F811
):
    url, seen = recorder
    connection = await database_sync_to_async(_connection)(url)
    on_recorder = await _open(
        await database_sync_to_async(_signed_in_cookie)(admin_user, connection.pk)
    )
    on_default = await _open(await database_sync_to_async(_signed_in_cookie)(member_user, None))
    try:
        deadline = time.monotonic() + 10
        while not any(h.get("Authorization") == f"Bearer {SECRET}" for h in seen):
            assert time.monotonic() < deadline, "the chosen connection was never asked"
            await asyncio.sleep(0.05)
        groups = {group for _, group in live._watches}
        assert len(groups) == 2, groups  # one shared watch per connection, not one for both
        assert all(
            h.get("X-Daytona-Organization-ID") == "org-7" for h in seen if h.get("Authorization")
        )
    finally:
        await on_recorder.disconnect()
        await on_default.disconnect()
