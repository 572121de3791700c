"""A tally's count (dashboard/core/cluster.py) against a heartbeat landing while it runs,
on a real Redis: the heartbeat is written between the count's own commands, at each
point in turn, so every interleaving is met without relying on timing."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from dashboard.core import cluster

HOLDER = "worker-a"
SHARES = "sandbar:shares:tabs:pty-1"
ALIVE = f"sandbar:alive:tabs:{HOLDER}"


def _beats_before_command(monkeypatch: pytest.MonkeyPatch, beat: redis.Redis, at: int) -> list[str]:
    """Make the counting client's `at`-th command (from 0) wait for HOLDER's heartbeat to
    be written first, as its own worker would from another connection (after the last
    command if there are fewer); the commands the count sent, in order."""
    opened = cluster._redis
    sent: list[str] = []

    def heartbeat() -> None:
        beat.set(ALIVE, 1, px=60_000)
        beat.hset(SHARES, HOLDER, 1)

    @contextlib.asynccontextmanager
    async def counting() -> AsyncIterator[Any]:
        async with opened() as client:
            send = client.execute_command

            async def command(*args: Any, **options: Any) -> Any:
                if len(sent) == at:
                    heartbeat()
                sent.append(str(args[0]).upper())
                return await send(*args, **options)

            client.execute_command = command
            yield client
        if len(sent) <= at:
            heartbeat()

    monkeypatch.setattr(cluster, "_redis", counting)
    return sent


@pytest.mark.parametrize("at", range(4))
async def test_a_holder_whose_heartbeat_lands_during_a_count_keeps_its_share(
    shared_cache, monkeypatch, at: int
) -> None:
    beat = redis.Redis.from_url(shared_cache)
    # HOLDER has one tab open, and its last beat lapsed (a late beat): a count may drop
    # its share, but only if the beat is not there at the moment it looks.
    beat.hset(SHARES, HOLDER, 1)
    beat.delete(ALIVE)
    reader = cluster.Tally("tabs", holder="worker-b")
    with monkeypatch.context() as patched:
        sent = _beats_before_command(patched, beat, at)
        assert await reader.count("pty-1") in (0, 1)
    assert beat.exists(ALIVE)  # the heartbeat did land, at point `at` of `sent`
    assert beat.hget(SHARES, HOLDER) == b"1", f"share dropped after {sent[:at]}"
    assert await reader.count("pty-1") == 1


async def test_a_count_drops_only_the_shares_of_holders_without_a_heartbeat(
    shared_cache,
) -> None:
    beat = redis.Redis.from_url(shared_cache)
    beat.hset(SHARES, mapping={HOLDER: 2, "worker-b": 3, "worker-c": -1})
    beat.set("sandbar:alive:tabs:worker-b", 1, px=60_000)
    beat.set("sandbar:alive:tabs:worker-c", 1, px=60_000)
    # worker-c's share below zero counts as none, and is kept (it lives).
    assert await cluster.Tally("tabs", holder="worker-d").count("pty-1") == 3
    assert beat.hgetall(SHARES) == {b"worker-b": b"3", b"worker-c": b"-1"}
