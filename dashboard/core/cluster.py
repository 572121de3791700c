"""What several dashboard processes share through the cache: leases and tallies.

With ``REDIS_URL`` the cache is Redis, which every worker (and every machine behind
the proxy) sees; without it the cache is each process's own, and so is everything here,
which is right: then each process has its own channel layer too, and must follow
Daytona for its own pages.

A lease lets one process do a job for everyone (follow Daytona's sandboxes for the live
pages) while the others stand by; it lapses when its holder stops renewing it (it
exited, or was killed), and a standby takes it over. A tally is a count that every
process adds to (the tabs attached to one shell).
"""

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)

# Who this process is to the others: a lease names its holder. One name per process, so
# within a process (where each event loop keeps its own watch) nothing changes.
PROCESS = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
TALLY_SECONDS = 24 * 3600


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


@dataclass(frozen=True)
class Tally:
    """Named counts every process adds to; a no-op (always 0) when the cache is this
    process's own, where the caller's own count already says everything."""

    prefix: str

    def _key(self, name: str) -> str:
        return f"sandbar:tally:{self.prefix}:{name}"

    async def add(self, name: str, delta: int) -> None:
        """Add `delta` (negative to take away); a failing cache only logs."""
        if not shared():
            return
        key = self._key(name)
        try:
            await cache.aadd(key, 0, TALLY_SECONDS)
            try:
                await cache.aincr(key, delta)
            except ValueError:  # it lapsed between the two: start it again
                await cache.aadd(key, delta, TALLY_SECONDS)
        except Exception as error:
            log.warning("tally %s: the cache failed: %s", key, error)

    async def count(self, name: str) -> int | None:
        """The count (never below 0), or None if the cache cannot say."""
        if not shared():
            return 0
        try:
            return max(0, int(await cache.aget(self._key(name), 0)))
        except Exception as error:
            log.warning("tally %s: the cache failed: %s", self.prefix, error)
            return None
