"""A call still holding a deleted connection's pool when it closes (after the grace) is
told the connection was removed: Daytona's own Unavailable (a 503 and the pages' usual
banner), never the RuntimeError httpx raises on a closed client (a 500).

The pools are the server's (opened on the test's loop, as the ASGI lifespan does); the
connections are deleted through the admin's page, so the real retirement runs.
"""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from dashboard.connections.active import target_of
from dashboard.connections.models import Connection
from dashboard.core.http import status_for
from dashboard.daytona import client
from tests.conftest import client_for
from tests.connections.conftest import GRACE
from tests.connections.servers import silent_port

pytestmark = pytest.mark.django_db(transaction=True)


def _connection(name: str, url: str, key: str) -> Connection:
    row = Connection(name=name, api_url=url)
    row.set_secret(key)
    row.save()
    return row


async def _delete(admin_user, row: Connection) -> None:
    admin = await sync_to_async(client_for)(admin_user)
    response = await admin.post(reverse("connection_delete", args=(row.pk,)))
    assert response.status_code == 302


async def _closed(http, seconds: float = 10.0) -> bool:
    for _ in range(int(seconds / GRACE)):
        if http.is_closed:
            return True
        await asyncio.sleep(GRACE)
    return http.is_closed


async def _call_holding_the_pool_past_its_deletion(admin_user, row: Connection) -> None:
    with client.aimed_at(target_of(row)):
        async with client.connection() as http:  # a call under way holds its pool
            url, headers = client.api_url() + "/sandbox", client.auth_header()
            assert (await http.get(url, headers=headers)).status_code == 200
            await _delete(admin_user, row)
            assert await _closed(http)
            await http.get(url, headers=headers)


async def test_a_call_holding_a_deleted_connections_pool_past_the_grace_is_told_it_was_removed(
    served, daytona_engine, admin_user
) -> None:
    row = await sync_to_async(_connection)("again", daytona_engine.api_url, daytona_engine.api_key)
    with pytest.raises(client.Unavailable) as raised:
        await _call_holding_the_pool_past_its_deletion(admin_user, row)
    assert "connection was removed" in raised.value.message
    assert status_for(raised.value) == 503


async def test_a_read_in_flight_when_its_deleted_connections_pool_closes_is_unavailable(
    served, db, admin_user
) -> None:
    # A Daytona that accepts and never answers keeps the read in flight past the grace;
    # the closing pool breaks it and the read would be sent again on the closed client.
    with silent_port() as port:
        row = await sync_to_async(_connection)("stuck", f"http://127.0.0.1:{port}/api", "k")
        with client.aimed_at(target_of(row)):
            call = await client.started(client.request("GET", "/sandbox", time_limit=60))
        await _delete(admin_user, row)
        with pytest.raises(client.Unavailable) as raised:
            await asyncio.wait_for(call, 30)  # far sooner than its own 60 s limit
    assert "connection was removed" in raised.value.message


async def _call_holding_the_pool_past_shutdown() -> None:
    async with client.connection() as http:
        await client.close_shared()
        await http.get(client.api_url() + "/health")


async def test_a_call_on_a_pool_closed_with_the_server_is_unavailable_too(
    served, daytona_engine
) -> None:
    with pytest.raises(client.Unavailable) as raised:
        await _call_holding_the_pool_past_shutdown()
    assert "shutting down" in raised.value.message
