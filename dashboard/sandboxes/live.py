"""Live sandbox states: one subscription (or one poll) per process and connection, fanned out.

However many browsers watch, each process follows Daytona's event stream once
(only while someone watches) and sends each change once to a Channels group;
the consumers render it for their own person. Where Daytona has no stream, a
poll of the list once a second, diffed against the last answer, does the same.
With the stream, a slow poll still runs to catch what a reconnect may miss
(and deletions). So N watchers cost one stream or one poll, not N.

Across processes (several workers sharing Redis) one process leads: it holds a lease
in the cache (dashboard/core/cluster.py) and its changes reach every worker's pages
through the shared channel layer; the others stand by and take over when it lapses.
"""

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.layers import get_channel_layer

from dashboard import daytona
from dashboard.accounts.liveness import sandbox_group
from dashboard.core import cluster

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# With the event stream up, the list is only re-read to catch what it missed.
STREAMING_POLL_SECONDS = 15.0
# A poll that fails waits longer, so a down Daytona is not hammered.
BACKOFF_SECONDS = 5.0
MAX_WATCHED = 5000


def group_name() -> str:
    """The Channels group of everyone watching this Daytona connection's sandboxes."""
    digest = hashlib.sha256(daytona.client.scope().encode()).hexdigest()[:16]
    return f"sandboxes.{digest}"


def _fingerprint(sandbox: daytona.Sandbox) -> tuple:
    return (
        sandbox.state,
        sandbox.desired_state,
        sandbox.error_reason,
        sandbox.updated_at,
        tuple(sorted(sandbox.labels.items())),
    )


def _older(sandbox: daytona.Sandbox, fingerprint: tuple) -> bool:
    known_at = fingerprint[3]
    return bool(known_at and sandbox.updated_at and sandbox.updated_at < known_at)


async def _tell_its_consumers(sandbox_id: str, data: dict | None) -> None:
    """The sandbox's own terminals and logs look again at who may use it (its owner
    label may have changed straight in Daytona); None: it is gone."""
    message = (
        {"type": "sandbox.changed", "sandbox": data}
        if data
        else {"type": "sandbox.changed", "gone": True}
    )
    await get_channel_layer().group_send(sandbox_group(sandbox_id), message)


@dataclass
class _Watch:
    group: str
    watchers: int = 0
    task: asyncio.Task | None = None
    known: dict[str, tuple] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    listed: set[str] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    polls: int = 0
    healthy: bool = True
    streaming: bool = False
    events: int = 0

    async def _relay(self, kind: str, data: dict) -> None:
        try:
            sandbox = daytona.Sandbox.from_api(data)
        except daytona.DaytonaError:
            return
        fingerprint = _fingerprint(sandbox)
        if self.known.get(sandbox.id) == fingerprint:
            return
        self.known[sandbox.id] = fingerprint
        self.names[sandbox.id] = sandbox.name
        self.events += 1
        await get_channel_layer().group_send(
            self.group, {"type": f"sandbox.{kind}", "sandbox": data}
        )
        await _tell_its_consumers(sandbox.id, data)

    def _connected(self) -> None:
        self.streaming = True
        self.wake.set()

    async def stream(self) -> None:
        """Follow the event stream while it lasts; reconnect after a pause if it drops."""
        while True:
            try:
                await daytona.follow_sandbox_events(self._relay, self._connected)
            except daytona.DaytonaError as error:
                log.info("no sandbox event stream, polling instead: %s", error.message)
                return
            finally:
                self.streaming = False
                self.wake.set()
            await asyncio.sleep(BACKOFF_SECONDS)

    async def run(self) -> None:
        await cluster.lead(
            cluster.Lease(f"live:{self.group}"),
            self.follow,
            took_over=self.catch_up,
            name=f"live sandboxes {self.group}",
        )

    async def catch_up(self) -> None:
        # Another process led until now: its last changes may not have been told.
        await get_channel_layer().group_send(self.group, {"type": "sandbox.available"})

    async def follow(self) -> None:
        stream = asyncio.create_task(self.stream(), name=f"events {self.group}")
        try:
            await self.poll()
        finally:
            stream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stream

    async def _pause(self) -> None:
        # Sleep until the next poll is due, or the stream came up or dropped.
        self.wake.clear()
        seconds = STREAMING_POLL_SECONDS if self.streaming else POLL_SECONDS
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)

    async def poll(self) -> None:
        layer = get_channel_layer()
        first = True
        while True:
            try:
                sandboxes = await daytona.list_all_sandboxes(limit=MAX_WATCHED)
            except daytona.DaytonaError as error:
                if self.healthy:
                    log.warning("live sandbox poll failed: %s", error.message)
                    await layer.group_send(
                        self.group, {"type": "sandbox.unavailable", "message": error.message}
                    )
                self.healthy = False
                await asyncio.sleep(BACKOFF_SECONDS)
                continue
            self.polls += 1
            log.debug("live poll %s: %d sandboxes", self.group, len(sandboxes))
            if not self.healthy:  # the pages said "not answering": now they catch up
                await layer.group_send(self.group, {"type": "sandbox.available"})
            self.healthy = True
            current = {s.id: s for s in sandboxes}
            fresh: dict[str, tuple] = {}
            for sandbox_id, sandbox in current.items():
                before = self.known.get(sandbox_id)
                if before is not None and _older(sandbox, before):
                    # The stream already told a newer state than this list shows.
                    fresh[sandbox_id] = before
                    continue
                fresh[sandbox_id] = _fingerprint(sandbox)
                if first or before == fresh[sandbox_id]:
                    continue
                kind = "sandbox.created" if before is None else "sandbox.changed"
                data = sandbox.to_api()
                await layer.group_send(self.group, {"type": kind, "sandbox": data})
                await _tell_its_consumers(sandbox_id, data)
            if not first:
                # Only what this poll and the last both could see: a sandbox the stream
                # announced after the last poll is not "removed" for being new.
                for sandbox_id in self.listed - current.keys():
                    name = self.names.get(sandbox_id, sandbox_id)
                    await layer.group_send(
                        self.group, {"type": "sandbox.removed", "id": sandbox_id, "name": name}
                    )
                    await _tell_its_consumers(sandbox_id, None)
            self.known = fresh
            self.listed = set(current)
            self.names = {i: s.name for i, s in current.items()}
            first = False
            await self._pause()


_watches: dict[tuple[int, str], _Watch] = {}


def _key() -> tuple[int, str]:
    # Per event loop too: a task belongs to the loop that started it.
    return id(asyncio.get_running_loop()), group_name()


class _Shared(Protocol):
    """One task shared by every consumer that wants it, counted."""

    watchers: int
    task: asyncio.Task | None

    async def run(self) -> None: ...


def _hold[K, S: _Shared](registry: dict[K, S], key: K, make: Callable[[], S], name: str) -> K:
    """Count one more watcher of ``registry[key]``, made and started by the first."""
    shared = registry.get(key)
    if shared is None:
        shared = registry[key] = make()
    shared.watchers += 1
    if shared.task is None or shared.task.done():
        shared.task = asyncio.create_task(shared.run(), name=name)
    return key


async def _let_go[K](registry: dict[K, Any], key: K) -> None:
    """Count one watcher fewer; the last one stops the task."""
    shared = registry.get(key)
    if shared is None:
        return
    shared.watchers -= 1
    if shared.watchers <= 0:
        registry.pop(key, None)
        if shared.task is not None:
            shared.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await shared.task


async def join() -> tuple[int, str]:
    """Count one more watcher; the first one starts the shared poll. Returns the key to leave."""
    key = _key()
    return _hold(_watches, key, lambda: _Watch(group=key[1]), f"poll {key[1]}")


def answering(key: tuple[int, str]) -> bool:
    """Whether the shared poll's last look at Daytona got an answer."""
    return key not in _watches or _watches[key].healthy


async def leave(key: tuple[int, str]) -> None:
    """Count one watcher fewer; the last one stops the poll."""
    # The key from join(), not a fresh one: the connection may have changed meanwhile.
    await _let_go(_watches, key)


# -- one sandbox's owner, for its open terminals and logs --------------------------------

# Daytona sends no event when labels change, and the list above is re-read only every
# 15 s while its stream is up: a sandbox whose terminal is open is looked at on its own,
# once a second per process however many of its terminals are open, so that losing its
# ownership ends them within a second (by one process of all, as the list above).
LABELS_POLL_SECONDS = 1.0


@dataclass
class _Followed:
    sandbox_id: str
    labels: dict[str, str]
    watchers: int = 0  # its open terminals and logs
    task: asyncio.Task | None = None

    async def run(self) -> None:
        lease = cluster.Lease(f"labels:{group_name()}:{self.sandbox_id}")
        await cluster.lead(lease, self.look, name=f"labels {self.sandbox_id}")

    async def look(self) -> None:
        labels = self.labels
        while True:
            await asyncio.sleep(LABELS_POLL_SECONDS)
            try:
                sandbox = await daytona.get_sandbox(self.sandbox_id)
            except daytona.NotFound:
                await _tell_its_consumers(self.sandbox_id, None)
                return
            except daytona.DaytonaError:
                continue  # unreachable for now: the consumers keep what they knew
            if sandbox.labels != labels:
                await _tell_its_consumers(self.sandbox_id, sandbox.to_api())
            labels = sandbox.labels


_followed: dict[tuple[int, str], _Followed] = {}


async def follow(sandbox_id: str, labels: dict[str, str]) -> tuple[int, str]:
    """Count one more open consumer of `sandbox_id`, which knows it with `labels`;
    returns the key to `unfollow`."""
    key = (id(asyncio.get_running_loop()), sandbox_id)
    return _hold(
        _followed, key, lambda: _Followed(sandbox_id, dict(labels)), f"labels {sandbox_id}"
    )


async def unfollow(key: tuple[int, str]) -> None:
    """Count one open consumer fewer; the last one stops looking."""
    await _let_go(_followed, key)
