"""The usage sampler asks every connection at once: a Daytona that never answers holds
up only its own sample, not the live connections' in the same round."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from dashboard.connections.active import target_of
from dashboard.connections.models import Connection
from dashboard.daytona import client
from dashboard.limits import history
from dashboard.limits.models import SamplerLease, UsageSample
from tests.connections.servers import silent_port

pytestmark = pytest.mark.django_db(transaction=True)

# Every call's own time limit: the stuck connection waits this long, so a live sample
# stored well before it proves the live one did not wait behind the stuck one.
CALL_SECONDS = 60
LIVE_WITHIN = 30.0


def _connection(name: str, url: str, key: str) -> Connection:
    row = Connection(name=name, api_url=url)
    row.set_secret(key)
    row.save()
    return row


def _key_of(row: Connection) -> str:
    with client.aimed_at(target_of(row)):
        return history.connection_key()


def _sampled(key: str) -> bool:
    return UsageSample.objects.filter(connection=key, person="").exists()


async def _stored(key: str, seconds: float) -> bool:
    for _ in range(int(seconds / 0.1)):
        if await sync_to_async(_sampled)(key):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_a_connection_that_never_answers_does_not_hold_up_a_live_ones_sample(
    daytona_engine, settings
) -> None:
    settings.DAYTONA_TIMEOUT = CALL_SECONDS
    with silent_port() as port:
        # Named to come first: one after another, "live" would wait out the stuck one.
        stuck = await sync_to_async(_connection)("a-stuck", f"http://127.0.0.1:{port}/api", "k")
        live = await sync_to_async(_connection)(
            "b-live", daytona_engine.api_url, daytona_engine.api_key
        )
        stuck_key, live_key = (
            await sync_to_async(_key_of)(stuck),
            await sync_to_async(_key_of)(live),
        )
        round_ = asyncio.ensure_future(history.sample_all())
        try:
            assert await _stored(live_key, LIVE_WITHIN)
            assert not round_.done()  # the stuck connection is still waiting for its answer
        except BaseException:
            round_.cancel()
            raise
    # The port closed: the stuck call fails now, and the round ends with it skipped.
    assert await asyncio.wait_for(round_, LIVE_WITHIN) == 2  # the Default and "b-live"
    assert not await sync_to_async(_sampled)(stuck_key)
    # Each connection was sampled under its own lease.
    leases = await sync_to_async(set)(SamplerLease.objects.values_list("name", flat=True))
    assert {f"usage:{live_key}", f"usage:{stuck_key}"} <= leases


async def test_a_connection_failing_unexpectedly_skips_only_itself(
    daytona_engine, monkeypatch
) -> None:
    live = await sync_to_async(_connection)("live", daytona_engine.api_url, daytona_engine.api_key)
    broken = await sync_to_async(_connection)("broken", daytona_engine.api_url, "k")
    broken_key = await sync_to_async(_key_of)(broken)
    sample_once = history.sample_once

    async def failing_for_broken(now=None) -> bool:
        if history.connection_key() == broken_key:
            raise ValueError("not a Daytona failure")
        return await sample_once(now)

    monkeypatch.setattr(history, "sample_once", failing_for_broken)
    assert await history.sample_all() == 2  # the Default and "live"
    assert await sync_to_async(_sampled)(await sync_to_async(_key_of)(live))


async def test_a_connection_another_worker_holds_is_left_to_it_in_a_concurrent_round(
    daytona_engine,
) -> None:
    held = await sync_to_async(_connection)("held", daytona_engine.api_url, daytona_engine.api_key)
    free = await sync_to_async(_connection)("free", daytona_engine.api_url, daytona_engine.api_key)
    held_key = await sync_to_async(_key_of)(held)
    taken = await sync_to_async(history.take_lease)(
        f"usage:{held_key}", "another-worker", timedelta(minutes=10), timezone.now()
    )
    assert taken
    assert await history.sample_all() == 2  # the Default and "free"; "held" is theirs
    assert not await sync_to_async(_sampled)(held_key)
    assert await sync_to_async(_sampled)(await sync_to_async(_key_of)(free))
