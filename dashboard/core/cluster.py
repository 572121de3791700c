"""What several dashboard processes share through the cache: leases and tallies.

With ``REDIS_URL`` the cache is Redis, which every worker (and every machine behind
the proxy) sees; without it the cache is each process's own, and so is everything here,
which is right: then each process has its own channel layer too, and must follow
Daytona for its own pages.

A lease lets one process do a job for everyone (follow Daytona's sandboxes for the live
pages) while the others stand by; it lapses when its holder stops renewing it (it
exited, or was killed), and a standby takes it over. A tally is a count that every
process adds to (the tabs attached to one shell); each process's share counts only
while it lives (its heartbeat), so a killed worker's tabs drop out within a minute.
"""

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)

# Who this process is to the others: a lease names its holder. One name per process, so
# within a process (where each event loop keeps its own watch) nothing changes.
PROCESS = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
# A tally untouched this long is dropped whole (a backstop: shares die with their holder).
TALLY_SECONDS = 24 * 3600
# A process's share of a tally counts this long after its last heartbeat, which it
# sends every third of it while it has any share: a killed worker's drops out within it.
ALIVE_SECONDS = 60.0


def shared() -> bool:
    """Whether the cache (and so every lease and tally) is shared with other processes."""
    backend = settings.CACHES["default"]["BACKEND"]
    return not backend.endswith(("LocMemCache", "DummyCache"))


@dataclass
class Lease:
    """One named job held by one process at a time, through the cache."""

    name: str
    # How long it outlives its holder's last renewal (SANDBAR_LEASE_SECONDS): a killed
    # worker's job is taken over within this. Renewed three times as often, so a slow
    # tick does not lose it.
    seconds: float = field(default_factory=lambda: float(settings.LEASE_SECONDS))
    holder: str = PROCESS

    @property
    def key(self) -> str:
        return f"sandbar:lease:{self.name}"

    async def take(self) -> bool:
        """Take the lease, or renew it if we hold it; whether we hold it now.

        A cache that fails counts as "not ours": a standby waits rather than two
        processes doing the job (a down Redis has stopped the channel layer too).
        """
        try:
            if await cache.aadd(self.key, self.holder, self.seconds):
                return True
            if await cache.aget(self.key) != self.holder:
                return False
            # Renewed only after reading it is ours; if it lapsed in between and another
            # took it, this extends theirs, and we find out at the next renewal.
            return bool(await cache.atouch(self.key, self.seconds))
        except Exception as error:
            log.warning("lease %s: the cache failed: %s", self.name, error)
            return False

    async def release(self) -> None:
        """Let go now (a standby takes over at its next look, not after the lease lapses)."""
        with contextlib.suppress(Exception):
            if await cache.aget(self.key) == self.holder:
                await cache.adelete(self.key)


async def lead(
    lease: Lease,
    job: Callable[[], Awaitable[None]],
    *,
    took_over: Callable[[], Awaitable[None]] | None = None,
    name: str = "",
) -> None:
    """Run `job` only while this process holds `lease`; stand by (look again every
    third of the lease) while another does. `took_over` runs when this process begins
    after having stood by: another held it, and what it did not tell may be missed."""
    every = lease.seconds / 3
    waited = False
    try:
        while True:
            if not await lease.take():
                waited = True
                await asyncio.sleep(every)
                continue
            # Worth a line where it changes hands; alone, a process always leads.
            level = logging.INFO if shared() else logging.DEBUG
            log.log(level, "%s: this process leads (lease %s)", name or lease.name, lease.name)
            if waited and took_over is not None:
                await took_over()
            task = asyncio.create_task(job(), name=name or lease.name)
            try:
                while not task.done():
                    await asyncio.wait({task}, timeout=every)
                    if not task.done() and not await lease.take():
                        log.info("%s: lease lost, standing by", name or lease.name)
                        waited = True
                        break
                else:
                    task.result()  # the job ended: its error, if any, is the caller's
                    return
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        await lease.release()


class Tally:
    """Named counts every process adds to; a no-op (always 0) when the cache is this
    process's own, where the caller's own count already says everything.

    In Redis, a hash per name holds each process's share, and a key per process that
    lapses ALIVE_SECONDS after its last heartbeat says it lives; a count sums the shares
    of the living and drops the others'. The heartbeat is one timer per process, not
    work per add, and ends when the process holds no share.
    """

    def __init__(self, prefix: str, holder: str = PROCESS) -> None:
        self.prefix = prefix
        self.holder = holder
        self._mine: Counter[str] = Counter()  # this process's shares
        self._beat: asyncio.Task[None] | None = None

    def _key(self, name: str) -> str:
        # Not "sandbar:tally:", where earlier releases keep a plain integer (a day): a
        # hash there would fail with WRONGTYPE through a rolling upgrade.
        return f"sandbar:shares:{self.prefix}:{name}"

    def _alive(self, holder: str) -> str:
        return f"sandbar:alive:{self.prefix}:{holder}"

    async def add(self, name: str, delta: int) -> None:
        """Add `delta` (negative to take away); a failing cache only logs."""
        if not shared():
            return
        self._mine[name] += delta
        if self._mine[name] == 0:
            del self._mine[name]
        key = self._key(name)
        try:
            # One MULTI: the share and its liveness together.
            async with _redis() as redis, redis.pipeline() as pipe:
                pipe.hincrby(key, self.holder, delta)
                pipe.expire(key, TALLY_SECONDS)
                pipe.set(self._alive(self.holder), 1, px=_alive_ms())
                await pipe.execute()
        except Exception as error:
            log.warning("tally %s: the cache failed: %s", key, error)
        self._keep_beating()

    async def count(self, name: str) -> int | None:
        """The count of the living processes (never below 0), or None if the cache
        cannot say."""
        if not shared():
            return 0
        key = self._key(name)
        try:
            async with _redis() as redis:
                # One script, so a heartbeat cannot land between the look at a holder's
                # beat and the drop of its share (a fresh share lost until its next beat).
                living = await redis.register_script(_COUNT_LIVING)(
                    keys=[key], args=[self._alive("")]
                )
        except Exception as error:
            log.warning("tally %s: the cache failed: %s", self.prefix, error)
            return None
        return int(living)

    def _keep_beating(self) -> None:
        loop = asyncio.get_running_loop()
        beat = self._beat
        if self._mine and (beat is None or beat.done() or beat.get_loop() is not loop):
            self._beat = loop.create_task(self._heartbeat(), name=f"tally {self.prefix}")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(ALIVE_SECONDS / 3)
            if not self._mine:
                return
            try:
                await self._refresh()
            except Exception as error:  # the next beat tries again
                log.warning("tally %s: the heartbeat failed: %s", self.prefix, error)

    async def _refresh(self) -> None:
        """Say this process lives, and write its shares again: a count that thought it
        dead (a beat late) dropped them."""
        async with _redis() as redis, redis.pipeline() as pipe:
            pipe.set(self._alive(self.holder), 1, px=_alive_ms())
            for name, share in list(self._mine.items()):
                pipe.hset(self._key(name), self.holder, share)
                pipe.expire(self._key(name), TALLY_SECONDS)
            await pipe.execute()


# Sums the shares of the holders whose heartbeat key (ARGV[1] and the holder) exists and
# drops the others'. Each share counts at least 0: one below is a Redis that lost its adds
# (restarted, or dropped for a late beat) and then took the holder's closings, which would
# otherwise be taken from other workers' tabs (its beat writes the shares it holds).
# The heartbeat keys are named inside the script (not passed as KEYS): which holders there
# are is known only once the hash is read, and the cache is one Redis, not a cluster.
_COUNT_LIVING = """
local shares = redis.call('HGETALL', KEYS[1])
local total, dead = 0, {}
for i = 1, #shares, 2 do
    if redis.call('EXISTS', ARGV[1] .. shares[i]) == 1 then
        total = total + math.max(0, tonumber(shares[i + 1]) or 0)
    else
        dead[#dead + 1] = shares[i]
    end
end
if #dead > 0 then
    redis.call('HDEL', KEYS[1], unpack(dead))
end
return total
"""


def _alive_ms() -> int:
    return max(1, round(ALIVE_SECONDS * 1000))


@contextlib.asynccontextmanager
async def _redis() -> AsyncIterator[Any]:
    """A client of the cache's Redis for one use: the cache's API has no hashes, and a
    client is bound to the loop it was opened on (tallies are counted on a few)."""
    import redis.asyncio  # the redis extra; only where the cache is Redis

    location = settings.CACHES["default"]["LOCATION"]
    url = location[0] if isinstance(location, list | tuple) else location
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        yield client
    finally:
        await client.aclose()
