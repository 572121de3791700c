"""Leases and tallies (dashboard/core/cluster.py) on a real Redis, two holders in one
process standing in for two workers."""

import asyncio

import pytest
import redis

from dashboard.core import cluster


@pytest.fixture
def shared_cache(redis_url: str, settings) -> str:
    redis.Redis.from_url(redis_url).flushall()
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    }
    return redis_url


async def test_a_lease_is_held_by_one_holder_until_it_lapses(shared_cache) -> None:
    first = cluster.Lease("job", seconds=2, holder="worker-a")
    second = cluster.Lease("job", seconds=2, holder="worker-b")
    assert await first.take()
    assert not await second.take()
    assert await first.take()  # renewed
    await asyncio.sleep(2.5)  # a holder that stops renewing (killed) loses it
    assert await second.take()
    assert not await first.take()


async def test_a_released_lease_is_free_at_once(shared_cache) -> None:
    first = cluster.Lease("job", seconds=30, holder="worker-a")
    second = cluster.Lease("job", seconds=30, holder="worker-b")
    assert await first.take()
    await second.release()  # not the holder's: nothing happens
    assert not await second.take()
    await first.release()
    assert await second.take()


async def test_only_the_lease_holder_runs_the_job_and_a_standby_takes_over(shared_cache) -> None:
    runs: list[str] = []

    def job(name: str):
        async def run() -> None:
            runs.append(name)
            await asyncio.Event().wait()

        return run

    taken: list[str] = []

    async def took_over() -> None:
        taken.append("b")

    a = asyncio.create_task(cluster.lead(cluster.Lease("job", 1.5, "worker-a"), job("a")))
    await asyncio.sleep(0.3)
    b = asyncio.create_task(
        cluster.lead(cluster.Lease("job", 1.5, "worker-b"), job("b"), took_over=took_over)
    )
    await asyncio.sleep(2)
    assert runs == ["a"] and taken == []
    a.cancel()  # worker A stops: it lets go, B takes over at its next look (0.5 s)
    await asyncio.sleep(1)
    assert runs == ["a", "b"] and taken == ["b"]
    b.cancel()
    await asyncio.gather(a, b, return_exceptions=True)


async def test_a_tally_counts_across_holders_and_never_reads_below_zero(shared_cache) -> None:
    tabs = cluster.Tally("tabs")
    await tabs.add("pty-1", 1)
    await tabs.add("pty-1", 1)
    await tabs.add("pty-1", -1)
    assert await tabs.count("pty-1") == 1
    await tabs.add("pty-2", -1)
    assert await tabs.count("pty-2") == 0


async def test_a_tally_on_a_process_own_cache_counts_nothing(settings) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    tabs = cluster.Tally("tabs")
    await tabs.add("pty-1", 1)
    assert await tabs.count("pty-1") == 0


async def test_a_lease_on_a_cache_that_fails_is_not_held(settings) -> None:
    # Nothing listens on port 1 of loopback: every cache call fails.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    assert not await cluster.Lease("job", 2, "worker-a").take()
    assert await cluster.Tally("tabs").count("pty-1") is None
