"""Leases and tallies (dashboard/core/cluster.py) on a real Redis, two holders in one
process standing in for two workers, or a second process killed outright."""

import asyncio
import os
import signal
import sys
import textwrap
import time

import redis

from dashboard.core import cluster
from tests.engine_server import ROOT


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
    a = cluster.Tally("tabs", holder="worker-a")
    b = cluster.Tally("tabs", holder="worker-b")
    await a.add("pty-1", 1)
    await b.add("pty-1", 1)
    await a.add("pty-1", -1)
    assert await a.count("pty-1") == 1
    assert await b.count("pty-1") == 1
    await b.add("pty-2", -1)
    assert await a.count("pty-2") == 0
    await b.add("pty-1", -1)
    assert await a.count("pty-1") == 0
    await asyncio.sleep(0)  # their heartbeats see no share left and end


async def test_a_living_holders_share_outlasts_its_heartbeat_window(
    shared_cache, monkeypatch
) -> None:
    monkeypatch.setattr(cluster, "ALIVE_SECONDS", 1.0)
    a = cluster.Tally("tabs", holder="worker-a")
    b = cluster.Tally("tabs", holder="worker-b")
    await a.add("pty-1", 1)
    try:
        await asyncio.sleep(2.5)  # two and a half windows: only the heartbeat keeps it
        assert await b.count("pty-1") == 1
    finally:
        await a.add("pty-1", -1)
    assert await b.count("pty-1") == 0


async def test_a_share_a_late_heartbeat_lost_comes_back_at_the_next_beat(
    shared_cache, monkeypatch
) -> None:
    monkeypatch.setattr(cluster, "ALIVE_SECONDS", 0.6)
    a = cluster.Tally("tabs", holder="worker-a")
    b = cluster.Tally("tabs", holder="worker-b")
    await a.add("pty-1", 2)
    try:
        redis.Redis.from_url(shared_cache).delete("sandbar:alive:tabs:worker-a")  # late
        assert await b.count("pty-1") == 0  # taken for dead: its share is dropped
        await asyncio.sleep(0.5)  # a's next beat (every 0.2 s) writes it again
        assert await b.count("pty-1") == 2
    finally:
        await a.add("pty-1", -2)


async def test_a_tab_closed_after_redis_lost_its_share_takes_nothing_from_another_workers(
    shared_cache, monkeypatch
) -> None:
    monkeypatch.setattr(cluster, "ALIVE_SECONDS", 0.6)
    a = cluster.Tally("tabs", holder="worker-a")
    b = cluster.Tally("tabs", holder="worker-b")
    await a.add("pty-1", 1)  # a tab that stays open
    await b.add("pty-1", 1)
    try:
        redis.Redis.from_url(shared_cache).flushall()  # Redis restarted, nothing saved
        await b.add("pty-1", -1)  # b's tab closes before b's next beat
        await asyncio.sleep(0.5)  # a's next beat writes its share again
        assert await b.count("pty-1") == 1
    finally:
        await a.add("pty-1", -1)
    assert await b.count("pty-1") == 0


async def test_a_count_left_by_the_previous_release_does_not_block_the_shares(
    shared_cache,
) -> None:
    # Before shares, a tally was one integer under its name, kept a day: a rolling
    # upgrade meets them (and older workers go on writing them meanwhile).
    redis.Redis.from_url(shared_cache).set("sandbar:tally:tabs:pty-1", 3, ex=3600)
    a = cluster.Tally("tabs", holder="worker-a")
    await a.add("pty-1", 1)
    try:
        assert await a.count("pty-1") == 1
    finally:
        await a.add("pty-1", -1)
    assert await a.count("pty-1") == 0


# A worker of its own: counts one tab, then keeps beating until it is killed.
HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    import django
    from django.conf import settings

    backend = "django.core.cache.backends.redis.RedisCache"
    settings.configure(CACHES={"default": {"BACKEND": backend, "LOCATION": sys.argv[1]}})
    django.setup()
    from dashboard.core import cluster

    cluster.ALIVE_SECONDS = 2.0

    async def main():
        await cluster.Tally("tabs").add("pty-1", 1)
        print("counted", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


async def test_a_killed_workers_tabs_drop_out_of_the_count_within_its_heartbeat(
    shared_cache,
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, shared_cache,
        stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        line = await asyncio.wait_for(worker.stdout.readline(), 60)
        assert line.strip() == b"counted"
        tabs = cluster.Tally("tabs")  # this process reads
        await asyncio.sleep(3)  # past its 2 s window: it lives, so its tab counts
        assert await tabs.count("pty-1") == 1
        worker.send_signal(signal.SIGKILL)  # no cleanup, no last word
        await worker.wait()
        killed = time.monotonic()
        while await tabs.count("pty-1") != 0:
            assert time.monotonic() - killed < 6, "a killed worker's tab still counts"
            await asyncio.sleep(0.2)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()


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
