"""Sampling usage over time, once per Daytona connection however many workers serve.

Every process of the dashboard runs :func:`run` (started with the ASGI server's
lifespan); each tick, for the Default connection and each one an admin added, it tries
to take that connection's lease (a row in the database).
The holder samples if the last sample is older than the interval: the organization's
usage against Daytona's quotas and each member's against their Sandbar quota, one
:class:`UsageSample` row each. Rows older than the window are deleted as it goes, so
the table stays bounded (at 5 minutes and 7 days: 2016 rows per scope).
"""

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from dashboard import daytona
from dashboard.accounts.models import ConnectionQuota, Role, User
from dashboard.accounts.quotas import Footprint, members_quotas, usage_of
from dashboard.connections import pools
from dashboard.connections.active import target_of
from dashboard.connections.models import Connection
from dashboard.daytona import client
from dashboard.daytona.labels import OWNER_LABEL
from dashboard.limits.models import SamplerLease, UsageSample

log = logging.getLogger(__name__)

WINDOW = timedelta(days=7)
# A sample counts as this interval's when it is at least this share of it old: two
# processes a moment apart do not both sample.
DUE_SHARE = 0.9
FIRST_DELAY = 5.0  # seconds after start: the server is up before Daytona is asked
HOLDER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def interval() -> float:
    """Seconds between samples (``SANDBAR_USAGE_SAMPLE_SECONDS``; 0 turns sampling off)."""
    raw = getattr(settings, "USAGE_SAMPLE_SECONDS", None)
    if raw is None:
        raw = os.environ.get("SANDBAR_USAGE_SAMPLE_SECONDS", "").strip() or 300
    try:
        return max(0.0, float(raw))
    except ValueError:
        log.warning("SANDBAR_USAGE_SAMPLE_SECONDS must be a number of seconds, not %r", raw)
        return 300.0


def connection_key() -> str:
    """Which Daytona the samples are of: the connection calls go to now (the Default, or
    the one a request or :func:`sample_all` aimed the client at)."""
    return hashlib.sha256(client.scope().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Reading:
    """One scope's usage and quotas at one moment."""

    person: str
    sandboxes: int
    cpu: float
    memory: float
    disk: float
    sandbox_quota: int | None = None
    cpu_quota: float | None = None
    memory_quota: float | None = None
    disk_quota: float | None = None


# -- the lease ------------------------------------------------------------------------


def take_lease(name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
    """Hold ``name`` until ``now + ttl`` if nobody else holds it now; whether we do."""
    until = now + ttl
    try:
        with transaction.atomic():
            _, created = SamplerLease.objects.get_or_create(
                name=name, defaults={"holder": holder, "expires_at": until}
            )
            if created:
                return True
            free = Q(holder=holder) | Q(expires_at__lte=now)
            taken = SamplerLease.objects.filter(free, name=name).update(
                holder=holder, expires_at=until
            )
            return taken == 1
    except IntegrityError:  # another process created it first
        return False


def is_due(connection: str, every: float, now: datetime) -> bool:
    """Whether the connection's last organization sample is an interval old."""
    last = (
        UsageSample.objects.filter(connection=connection, person="")
        .order_by("-taken_at")
        .values_list("taken_at", flat=True)
        .first()
    )
    return last is None or (now - last).total_seconds() >= every * DUE_SHARE


# -- reading and storing ------------------------------------------------------------------


async def read_organization() -> tuple[Reading, list[daytona.Sandbox]]:
    """The organization's usage against Daytona's quotas, and the sandboxes behind it."""
    organizations = await daytona.list_organizations()
    if not organizations:
        raise daytona.Unavailable("Daytona lists no organization for this API key.")
    usage, sandboxes = await asyncio.gather(
        daytona.usage(organizations[0].id), daytona.list_all_sandboxes()
    )
    regions = usage.regions

    def total(name: str) -> float | None:
        quotas = [getattr(r, name) for r in regions if getattr(r, name) is not None]
        return float(sum(quotas)) if quotas else None

    footprints = [Footprint(s.state, s.cpu, s.memory, s.disk) for s in sandboxes]
    reading = Reading(
        person="",
        sandboxes=usage_of(footprints).sandboxes,
        cpu=float(sum(r.current_cpu_usage or 0 for r in regions)),
        memory=float(sum(r.current_memory_usage or 0 for r in regions)),
        disk=float(sum(r.current_disk_usage or 0 for r in regions)),
        cpu_quota=total("total_cpu_quota"),
        memory_quota=total("total_memory_quota"),
        disk_quota=total("total_disk_quota"),
    )
    return reading, sandboxes


def read_members(sandboxes: Iterable[daytona.Sandbox]) -> list[Reading]:
    """Each active member's usage (by the owner label) against their Sandbar quota."""
    owned: dict[str, list[Footprint]] = defaultdict(list)
    for sandbox in sandboxes:
        owner = sandbox.labels.get(OWNER_LABEL, "")
        owned[owner].append(Footprint(sandbox.state, sandbox.cpu, sandbox.memory, sandbox.disk))
    # Their quotas on the connection sampled (the client is aimed at it).
    target = client.current_target()
    quotas = members_quotas(target.connection_id if target else None)
    readings = []
    for member in User.objects.filter(is_active=True, role=Role.MEMBER):
        used = usage_of(owned[member.get_username()])
        quota = quotas.get(member.pk) or ConnectionQuota()
        readings.append(
            Reading(
                person=member.get_username(),
                sandboxes=used.sandboxes,
                cpu=used.cpu,
                memory=used.memory,
                disk=used.disk,
                sandbox_quota=quota.quota_sandboxes,
                cpu_quota=quota.quota_cpu,
                memory_quota=quota.quota_memory,
                disk_quota=quota.quota_disk,
            )
        )
    return readings


def store(connection: str, now: datetime, readings: Iterable[Reading]) -> int:
    """Write one sample per reading and drop those past the window; how many were written."""
    rows = [
        UsageSample(connection=connection, taken_at=now, **asdict(reading)) for reading in readings
    ]
    with transaction.atomic():
        UsageSample.objects.bulk_create(rows)
        UsageSample.objects.filter(taken_at__lt=now - WINDOW).delete()
    return len(rows)


async def sample_once(now: datetime | None = None) -> bool:
    """Take this interval's sample if this process holds the lease and one is due."""
    every = interval()
    moment = now or timezone.now()
    connection = connection_key()
    ttl = timedelta(seconds=max(every * 2, 30))
    held = await sync_to_async(take_lease)(f"usage:{connection}", HOLDER, ttl, moment)
    if not held or not await sync_to_async(is_due)(connection, every, moment):
        return False
    organization, sandboxes = await read_organization()

    def write() -> int:
        return store(connection, moment, [organization, *read_members(sandboxes)])

    await sync_to_async(write)()
    return True


def _targets() -> list[client.Target | None]:
    """The Default (None) and every connection an admin added. Every worker looks each
    round: it closes the pools of connections another worker deleted."""
    connections = list(Connection.objects.all())
    pools.prune(connection.pk for connection in connections)
    return [None, *(target_of(connection) for connection in connections)]


async def sample_all(now: datetime | None = None) -> int:
    """Sample each connection whose turn it is, all at once: one that fails is skipped,
    and one that is slow (a Daytona that never answers waits out its time limit) delays
    only itself, not the others' samples. Each still takes its own lease first."""
    targets = await sync_to_async(_targets)()
    taken = await asyncio.gather(*(_sample_one(target, now) for target in targets))
    return sum(taken)


async def _sample_one(target: client.Target | None, now: datetime | None) -> int:
    """1 if the connection was sampled; a failure is logged here, so it stays its own."""
    # Each runs as its own task: aiming it does not aim the others.
    with client.aimed_at(target):
        try:
            return int(await sample_once(now))
        except daytona.DaytonaError as error:
            log.warning("usage sample of %s skipped: %s", client.api_url(), error.message)
        except Exception:
            log.exception("usage sample of %s failed", client.api_url())
    return 0


# -- the loop, for the server's lifetime ----------------------------------------------------

_task: asyncio.Task[None] | None = None


async def run() -> None:
    """Sample every interval until cancelled; Daytona or the database failing only skips one."""
    await asyncio.sleep(FIRST_DELAY)
    while True:
        try:
            await sample_all()
        except Exception:
            log.exception("usage sample failed")
        await asyncio.sleep(interval())


def start() -> None:
    """Start sampling in this process (no-op when the interval is 0)."""
    global _task
    if _task is None and interval() > 0:
        _task = asyncio.get_running_loop().create_task(run(), name="usage-history")


async def stop() -> None:
    """Stop sampling in this process."""
    global _task
    if _task is not None:
        _task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _task
        _task = None
