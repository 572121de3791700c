"""Per-person quotas: how much of the organization one member may hold at once.

Each member has one per Daytona connection, as usage is counted on the connection in
use. Admins have no personal quota. Counting follows Daytona's own usage rules:
CPU and memory count while a sandbox runs (or is about to), disk counts for
every sandbox that still exists.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from dashboard.accounts.models import ConnectionQuota, Role, User

# States in which a sandbox holds CPU and memory (it runs, or is getting there).
ACTIVE_STATES = frozenset({"started", "starting", "creating", "restoring", "resizing"})
GONE_STATES = frozenset({"destroyed", "destroying", "deleting"})
QUOTA_FIELDS = ("quota_sandboxes", "quota_cpu", "quota_memory", "quota_disk")


@dataclass(frozen=True)
class Footprint:
    """What one sandbox holds: its state and resources (memory and disk in GiB)."""

    state: str
    cpu: int
    memory: int
    disk: int


@dataclass(frozen=True)
class Usage:
    sandboxes: int = 0
    cpu: int = 0
    memory: int = 0
    disk: int = 0


def usage_of(sandboxes: Iterable[Footprint]) -> Usage:
    """Add up what a person's sandboxes hold right now."""
    count = cpu = memory = disk = 0
    for sandbox in sandboxes:
        if sandbox.state in GONE_STATES:
            continue
        count += 1
        disk += sandbox.disk
        if sandbox.state in ACTIVE_STATES:
            cpu += sandbox.cpu
            memory += sandbox.memory
    return Usage(count, cpu, memory, disk)


def quota_on(user: User, connection_id: int | None) -> ConnectionQuota:
    """`user`'s quota on a connection (None: the Default); without a row, no limit."""
    found = ConnectionQuota.objects.filter(user=user, connection_id=connection_id).first()
    return found or ConnectionQuota(user=user, connection_id=connection_id)


def members_quotas(connection_id: int | None) -> dict[int, ConnectionQuota]:
    """Everyone's quota on a connection, by user id; one query."""
    return {q.user_id: q for q in ConnectionQuota.objects.filter(connection_id=connection_id)}


def limits_anything(quota: ConnectionQuota) -> bool:
    return any(getattr(quota, name) is not None for name in QUOTA_FIELDS)


def quota_problem(
    user: User, quota: ConnectionQuota, owned: Iterable[Footprint], adding: Footprint, *, new: bool
) -> str | None:
    """Why `adding` (a new sandbox, or one starting or growing) would exceed `user`'s
    `quota` (theirs on the connection the sandbox is on).

    `owned` must not include the sandbox being started or resized. Returns None
    when it fits, else a sentence for the person.
    """
    if user.role == Role.ADMIN:
        return None
    used = usage_of(owned)
    running = adding.state in ACTIVE_STATES
    checks = [
        ("sandboxes", quota.quota_sandboxes, used.sandboxes, 1 if new else 0, ""),
        ("vCPUs", quota.quota_cpu, used.cpu, adding.cpu if running else 0, ""),
        ("memory", quota.quota_memory, used.memory, adding.memory if running else 0, " GiB"),
        ("disk", quota.quota_disk, used.disk, adding.disk if new else 0, " GiB"),
    ]
    for label, limit, in_use, extra, unit in checks:
        if limit is not None and extra and in_use + extra > limit:
            return (
                f"Your quota allows {limit}{unit} of {label}; you use {in_use}{unit} and this "
                f"needs {extra}{unit} more. Stop or delete a sandbox, or ask an admin to raise "
                "your quota."
            )
    return None
