"""Live sandbox states: one shared poll of Daytona per process and connection, fanned out.

However many browsers watch, each process asks Daytona for the list once a
second (and only while someone watches), diffs it against the last answer,
and sends each change once to a Channels group; the consumers render it for
their own person. So N watchers cost one poll, not N.
"""

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass, field

from channels.layers import get_channel_layer
from django.conf import settings

from dashboard import daytona

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# A poll that fails waits longer, so a down Daytona is not hammered.
BACKOFF_SECONDS = 5.0
MAX_WATCHED = 5000


def group_name() -> str:
    """The Channels group of everyone watching this Daytona connection's sandboxes."""
    digest = hashlib.sha256(settings.DAYTONA_API_URL.encode()).hexdigest()[:16]
    return f"sandboxes.{digest}"


def _fingerprint(sandbox: daytona.Sandbox) -> tuple:
    return (
        sandbox.state,
        sandbox.desired_state,
        sandbox.error_reason,
        sandbox.updated_at,
        tuple(sorted(sandbox.labels.items())),
    )


@dataclass
class _Watch:
    group: str
    watchers: int = 0
    task: asyncio.Task | None = None
    known: dict[str, tuple] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    polls: int = 0
    healthy: bool = True

    async def run(self) -> None:
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
            self.healthy = True
            current = {s.id: s for s in sandboxes}
            if not first:
                for sandbox_id, sandbox in current.items():
                    before = self.known.get(sandbox_id)
                    if before is None:
                        kind = "sandbox.created"
                    elif before != _fingerprint(sandbox):
                        kind = "sandbox.changed"
                    else:
                        continue
                    await layer.group_send(self.group, {"type": kind, "sandbox": sandbox.raw})
                for sandbox_id in self.known.keys() - current.keys():
                    name = self.names.get(sandbox_id, sandbox_id)
                    await layer.group_send(
                        self.group, {"type": "sandbox.removed", "id": sandbox_id, "name": name}
                    )
            self.known = {i: _fingerprint(s) for i, s in current.items()}
            self.names = {i: s.name for i, s in current.items()}
            first = False
            await asyncio.sleep(POLL_SECONDS)


_watches: dict[tuple[int, str], _Watch] = {}


def _key() -> tuple[int, str]:
    # Per event loop too: a task belongs to the loop that started it.
    return id(asyncio.get_running_loop()), group_name()


async def join() -> tuple[int, str]:
    """Count one more watcher; the first one starts the shared poll. Returns the key to leave."""
    key = _key()
    watch = _watches.get(key)
    if watch is None:
        watch = _watches[key] = _Watch(group=key[1])
    watch.watchers += 1
    if watch.task is None or watch.task.done():
        watch.task = asyncio.create_task(watch.run(), name=f"poll {watch.group}")
    return key


async def leave(key: tuple[int, str]) -> None:
    """Count one watcher fewer; the last one stops the poll."""
    # The key from join(), not a fresh one: the connection may have changed meanwhile.
    watch = _watches.get(key)
    if watch is None:
        return
    watch.watchers -= 1
    if watch.watchers <= 0:
        _watches.pop(key, None)
        if watch.task is not None:
            watch.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch.task
