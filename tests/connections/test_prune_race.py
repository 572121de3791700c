"""A look-up of connections closes the pools of those gone (dashboard/connections/pools.py,
prune), never the pool of one added after the table was read: the connection is added
and called through exactly in that gap, by the pools' listing, so no timing decides.

The pools are the server's (opened on the test's loop, as the ASGI lifespan does) and
the calls go to the embedded engine over HTTP, through connections aimed at it.
"""

import asyncio
from collections.abc import Callable

import httpx
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection as database

from dashboard.connections import pools
from dashboard.connections.active import target_of
from dashboard.connections.models import Connection
from dashboard.core import health
from dashboard.daytona import client
from tests.connections.conftest import GRACE

pytestmark = pytest.mark.django_db(transaction=True)


def _connection(engine, name: str) -> Connection:
    row = Connection(name=name, api_url=engine.api_url)
    row.set_secret(engine.api_key)
    row.save()
    return row


async def _pool_after_a_call(row: Connection) -> httpx.AsyncClient:
    """Call the engine through the connection; the pooled client that carried it."""
    with client.aimed_at(target_of(row)):
        assert await client.request("GET", "/sandbox") is not None
        async with client.connection() as http:
            return http


def _deleted_elsewhere(pk: int) -> None:
    # No signal here: another worker's delete is only a missing row to this one.
    with database.cursor() as cursor:
        cursor.execute("DELETE FROM connections_connection WHERE id = %s", [pk])


def _added_before_listing(engine, opened: list[httpx.AsyncClient]) -> Callable[[], list[str]]:
    """client.pool_names, which first adds a connection and calls through it (another
    request of this worker, landing after the look-up read the table)."""
    listing = client.pool_names

    def pool_names() -> list[str]:
        if not opened:
            row = _connection(engine, "added")
            opened.append(async_to_sync(_pool_after_a_call)(row))
        return listing()

    return pool_names


async def _stays_open(http: httpx.AsyncClient) -> bool:
    await asyncio.sleep(GRACE * 10)  # well past the grace a retired pool gets
    return not http.is_closed


async def test_a_readiness_check_keeps_the_pool_of_a_connection_added_while_it_looked(
    served, daytona_engine, client, monkeypatch
) -> None:
    monkeypatch.setattr(health, "_kept", None)
    deleted = await sync_to_async(_connection)(daytona_engine, "deleted")
    deleted_http = await _pool_after_a_call(deleted)
    await sync_to_async(_deleted_elsewhere)(deleted.pk)
    added: list[httpx.AsyncClient] = []
    monkeypatch.setattr(pools.client, "pool_names", _added_before_listing(daytona_engine, added))
    response = await client.get("/readyz")
    assert response.status_code in (200, 503)
    assert len(added) == 1  # the connection was added in the gap
    assert await _stays_open(added[0])
    assert deleted_http.is_closed  # the one gone is still closed in the same look
