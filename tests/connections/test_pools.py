"""A deleted connection's pooled client is closed: at once in the worker that deleted
it, at the next look-up in the others (played here by deleting the row behind this
process's back, as another worker's delete looks from here).

The pools are the server's (opened on the test's loop, as the ASGI lifespan does) and
the calls go to the embedded engine over HTTP, through a connection aimed at it.
"""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connection as database
from django.urls import reverse

from dashboard.connections import pools
from dashboard.connections.active import SESSION_KEY, target_of
from dashboard.connections.models import Connection
from dashboard.core import health
from dashboard.daytona import client
from dashboard.limits import history
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)


def _connection(engine, name: str = "again") -> Connection:
    row = Connection(name=name, api_url=engine.api_url)
    row.set_secret(engine.api_key)
    row.save()
    return row


async def _pool_after_a_call(row: Connection):
    """Call the engine through the connection; the pooled client that carried it."""
    with client.aimed_at(target_of(row)):
        assert await client.request("GET", "/sandbox") is not None
        async with client.connection() as http:
            return http


async def _closed(http, seconds: float = 5.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        if http.is_closed:
            return True
        await asyncio.sleep(0.05)
    return http.is_closed


def _deleted_elsewhere(pk: int) -> None:
    # No signal here: another worker's delete is only a missing row to this one.
    with database.cursor() as cursor:
        cursor.execute("DELETE FROM connections_connection WHERE id = %s", [pk])


async def test_deleting_a_connection_closes_its_pool_in_this_worker(
    served, daytona_engine, admin_user
) -> None:
    row = await sync_to_async(_connection)(daytona_engine)
    http = await _pool_after_a_call(row)
    assert pools.pool_name(row.pk) in client.pool_names()
    admin = await sync_to_async(client_for)(admin_user)
    response = await admin.post(reverse("connection_delete", args=(row.pk,)))
    assert response.status_code == 302
    assert await _closed(http)
    assert pools.pool_name(row.pk) not in client.pool_names()
    # The Default's client is not touched.
    async with client.connection() as default:
        assert not default.is_closed


async def test_another_workers_delete_closes_the_pool_at_the_sampler_round(
    served, daytona_engine, monkeypatch
) -> None:
    row = await sync_to_async(_connection)(daytona_engine)
    kept = await sync_to_async(_connection)(daytona_engine, "kept")
    kept_http = await _pool_after_a_call(kept)
    http = await _pool_after_a_call(row)
    await sync_to_async(_deleted_elsewhere)(row.pk)
    monkeypatch.setattr(history, "sample_once", _no_sample)
    await history.sample_all()
    assert await _closed(http)
    assert not kept_http.is_closed  # still a connection: its pool stays


async def _no_sample(now=None) -> bool:
    return False


def _choosing(user, pk: int):
    browser = client_for(user)
    session = browser.session
    session[SESSION_KEY] = pk
    session.save()
    return browser


async def test_another_workers_delete_closes_the_pool_when_its_person_next_calls(
    served, daytona_engine, admin_user
) -> None:
    row = await sync_to_async(_connection)(daytona_engine)
    admin = await sync_to_async(_choosing)(admin_user, row.pk)
    http = await _pool_after_a_call(row)
    await sync_to_async(_deleted_elsewhere)(row.pk)
    page = await admin.get(reverse("connections"))
    assert page.status_code == 200
    assert await _closed(http)


async def test_another_workers_delete_closes_the_pool_at_the_next_readiness_check(
    served, daytona_engine, client, monkeypatch
) -> None:
    monkeypatch.setattr(health, "_kept", None)
    row = await sync_to_async(_connection)(daytona_engine)
    http = await _pool_after_a_call(row)
    await sync_to_async(_deleted_elsewhere)(row.pk)
    response = await client.get("/readyz")
    assert len(response.json()["connections"]) == 1  # the Default's only
    assert await _closed(http)
