"""The server's shutdown closes every pooled client it opened, a deleted connection's
too while it is still in its grace (dashboard/daytona/client.py, close_shared).

The pools are the server's (opened on the test's loop, as the ASGI lifespan does) and
the calls go to the embedded engine over HTTP, through a connection aimed at it; the
connection is deleted through the admin's page, so the real retirement runs.
"""

from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from dashboard.connections import pools
from dashboard.connections.active import target_of
from dashboard.connections.models import Connection
from dashboard.daytona import client
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def served(monkeypatch) -> AsyncIterator[None]:
    """This test's loop plays the server: its pools are the ones a worker keeps."""
    monkeypatch.setattr(client, "_shared", None)  # another test's server may share one
    # Far longer than the test: only the shutdown can close a retired pool in time.
    monkeypatch.setattr(client, "RETIRE_GRACE_SECONDS", 30.0)
    await client.open_shared()
    try:
        yield
    finally:
        await client.close_shared()


def _connection(engine) -> Connection:
    row = Connection(name="again", api_url=engine.api_url)
    row.set_secret(engine.api_key)
    row.save()
    return row


async def test_shutting_down_closes_a_deleted_connections_pool_still_in_its_grace(
    served, daytona_engine, admin_user
) -> None:
    row = await sync_to_async(_connection)(daytona_engine)
    with client.aimed_at(target_of(row)):
        assert await client.request("GET", "/sandbox") is not None
        async with client.connection() as http:
            pass
    admin = await sync_to_async(client_for)(admin_user)
    response = await admin.post(reverse("connection_delete", args=(row.pk,)))
    assert response.status_code == 302
    assert pools.pool_name(row.pk) not in client.pool_names()  # retired
    assert not http.is_closed  # in its grace: calls holding it may finish
    await client.close_shared()
    assert http.is_closed
