"""Organization usage against quotas, in Daytona's shape, and the quota checks.

The engine serves one organization. Its quotas come from the environment
(``SANDBAR_QUOTA_*``); usage is counted from sandbox, snapshot and volume states
exactly as Daytona counts it, so the dashboard's limits page reads the same numbers
from Daytona Cloud and from the engine.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard.engine.config import EngineConfig, env_int, env_str
from dashboard.engine.errors import ApiError, NotFound
from dashboard.engine.store import iso, now
from dashboard.engine.validation import Query

REGION = "local"
# Daytona's "consuming" state sets (apps/api/src/organization/constants/*consuming*.ts),
# restricted to the states this engine can be in.
COMPUTE_STATES = (
    "creating", "restoring", "started", "starting", "stopping", "resizing", "forking",
)  # fmt: skip
DISK_STATES = (*COMPUTE_STATES, "stopped", "archiving", "snapshotting")
SNAPSHOT_STATES = ("building", "pending", "pulling", "snapshotting", "active")
VOLUME_FREE_STATES = ("deleted", "error")


class QuotaExceeded(ApiError):
    """An organization quota would be exceeded (Daytona answers 403)."""

    status = 403


@dataclass(frozen=True)
class Quotas:
    """The organization's totals, from the environment."""

    cpu: int
    memory: int  # GiB
    disk: int  # GiB
    snapshots: int
    volumes: int
    key_name: str


def load_quotas() -> Quotas:
    """Read the quota settings (each documented in the README)."""
    return Quotas(
        cpu=env_int("SANDBAR_QUOTA_CPU", 32, minimum=1),
        memory=env_int("SANDBAR_QUOTA_MEMORY", 64, minimum=1),
        disk=env_int("SANDBAR_QUOTA_DISK", 200, minimum=1),
        snapshots=env_int("SANDBAR_QUOTA_SNAPSHOTS", 100, minimum=0),
        volumes=env_int("SANDBAR_QUOTA_VOLUMES", 100, minimum=0),
        key_name=env_str("SANDBAR_ENGINE_KEY_NAME", "sandbar"),
    )


@dataclass
class Usage:
    """Resources in use now."""

    cpu: int = 0
    memory: int = 0
    disk: int = 0
    snapshots: int = 0
    volumes: int = 0


def _count(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> int:
    try:
        row = db.execute(sql, params).fetchone()
    except sqlite3.OperationalError:  # the table is not created yet
        return 0
    return int(row[0] or 0)


def current_usage(db: sqlite3.Connection, *, exclude: str | None = None) -> Usage:
    """Count what the organization uses, optionally leaving one sandbox out."""
    other = exclude or ""
    # A sandbox being snapshotted keeps running if it was started (its desired state).
    compute = ", ".join("?" for _ in COMPUTE_STATES)
    computing = f"(state IN ({compute}) OR (state = ? AND desired_state = ?))"
    computing_params = (*COMPUTE_STATES, "snapshotting", "started")
    disk = ", ".join("?" for _ in DISK_STATES)
    row = db.execute(
        f"SELECT SUM(CASE WHEN {computing} THEN cpu ELSE 0 END),"  # noqa: S608
        f" SUM(CASE WHEN {computing} THEN memory ELSE 0 END),"
        f" SUM(CASE WHEN state IN ({disk}) THEN disk ELSE 0 END)"
        " FROM sandboxes WHERE id != ?",
        (*computing_params, *computing_params, *DISK_STATES, other),
    ).fetchone()
    snapshot_marks = ", ".join("?" for _ in SNAPSHOT_STATES)
    volume_marks = ", ".join("?" for _ in VOLUME_FREE_STATES)
    return Usage(
        cpu=int(row[0] or 0),
        memory=int(row[1] or 0),
        disk=int(row[2] or 0),
        snapshots=_count(
            db,
            f"SELECT COUNT(*) FROM snapshots WHERE general = 0 AND state IN ({snapshot_marks})",  # noqa: S608
            SNAPSHOT_STATES,
        ),
        volumes=_count(
            db,
            f"SELECT COUNT(*) FROM volumes WHERE state NOT IN ({volume_marks})",  # noqa: S608
            VOLUME_FREE_STATES,
        ),
    )


def check_sandbox(
    db: sqlite3.Connection,
    quotas: Quotas,
    *,
    cpu: int,
    memory: int,
    disk: int,
    exclude: str | None = None,
) -> None:
    """Refuse (403, Daytona's message) a sandbox whose resources would pass a quota."""
    usage = current_usage(db, exclude=exclude)
    if usage.cpu + cpu > quotas.cpu:
        raise QuotaExceeded(f"Total CPU limit exceeded. Maximum allowed: {quotas.cpu}.")
    if usage.memory + memory > quotas.memory:
        raise QuotaExceeded(f"Total memory limit exceeded. Maximum allowed: {quotas.memory}GiB.")
    if usage.disk + disk > quotas.disk:
        raise QuotaExceeded(f"Total disk limit exceeded. Maximum allowed: {quotas.disk}GiB.")


def check_snapshot(db: sqlite3.Connection, quotas: Quotas) -> None:
    """Refuse one more snapshot past the quota."""
    if current_usage(db).snapshots + 1 > quotas.snapshots:
        raise QuotaExceeded(f"Snapshot quota exceeded. Maximum allowed: {quotas.snapshots}")


def check_volume(db: sqlite3.Connection, quotas: Quotas) -> None:
    """Refuse one more volume past the quota."""
    if current_usage(db).volumes + 1 > quotas.volumes:
        raise QuotaExceeded(f"Volume quota exceeded. Maximum allowed: {quotas.volumes}")


def usage_overview(db: sqlite3.Connection, config: EngineConfig, quotas: Quotas) -> dict[str, Any]:
    """``OrganizationUsageOverview``: one region entry plus snapshot and volume counts."""
    usage = current_usage(db)
    region = {
        "regionId": REGION,
        "sandboxClass": "container",
        "totalCpuQuota": quotas.cpu,
        "currentCpuUsage": usage.cpu,
        "totalMemoryQuota": quotas.memory,
        "currentMemoryUsage": usage.memory,
        "totalDiskQuota": quotas.disk,
        "currentDiskUsage": usage.disk,
        "totalGpuQuota": 0,
        "currentGpuUsage": 0,
        "allowedGpuTypes": [],
        **per_sandbox_limits(config),
    }
    return {
        "regionUsage": [region],
        "totalSnapshotQuota": quotas.snapshots,
        "currentSnapshotUsage": usage.snapshots,
        "totalVolumeQuota": quotas.volumes,
        "currentVolumeUsage": usage.volumes,
    }


def per_sandbox_limits(config: EngineConfig) -> dict[str, int | None]:
    """The per-sandbox maximums (null means unlimited, as in Daytona)."""
    return {
        "maxCpuPerSandbox": config.max_cpu,
        "maxMemoryPerSandbox": config.max_memory,
        "maxDiskPerSandbox": config.max_disk,
        "maxDiskPerNonEphemeralSandbox": None,
        "maxCpuPerGpuSandbox": None,
        "maxMemoryPerGpuSandbox": None,
        "maxDiskPerGpuSandbox": None,
    }


# -- routes -------------------------------------------------------------------------


def _organization(request: Request) -> dict[str, Any]:
    engine = request.app.state.engine
    return {
        "id": engine.organization_id,
        "name": "Local engine",
        "personal": True,
        "defaultRegionId": REGION,
        "suspended": False,
        "suspendedAt": None,
        "suspensionReason": None,
        "createdAt": engine.store.meta("created_at", iso(now())),
        **per_sandbox_limits(engine.config),
    }


def _check_organization(request: Request) -> None:
    engine = request.app.state.engine
    if request.path_params["organizationId"] != engine.organization_id:
        raise NotFound(f"Organization with ID {request.path_params['organizationId']} not found")


async def list_organizations(request: Request) -> Response:
    """GET /organizations: the engine's one organization."""
    Query(request.query_params, set())
    return JSONResponse([_organization(request)])


async def get_organization(request: Request) -> Response:
    """GET /organizations/{organizationId}."""
    Query(request.query_params, set())
    _check_organization(request)
    return JSONResponse(_organization(request))


async def get_usage(request: Request) -> Response:
    """GET /organizations/{organizationId}/usage: usage against quotas."""
    Query(request.query_params, set())
    _check_organization(request)
    engine = request.app.state.engine
    return JSONResponse(usage_overview(engine.store.db, engine.config, engine.quotas))


def routes() -> list[BaseRoute]:
    """Organization routes, mounted at /api."""
    organization = "/organizations/{organizationId}"
    return [
        Route("/organizations", list_organizations, methods=["GET"]),
        Route(organization, get_organization, methods=["GET"]),
        Route(f"{organization}/usage", get_usage, methods=["GET"]),
    ]
