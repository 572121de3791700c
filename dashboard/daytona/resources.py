"""Reads of everything around sandboxes: snapshots, volumes, organizations, usage, audit."""

from datetime import datetime
from urllib.parse import quote

from dashboard.daytona.client import NotFound, Unavailable, request
from dashboard.daytona.models import (
    AuditLogPage,
    EngineHost,
    Organization,
    Snapshot,
    SnapshotPage,
    Usage,
    Volume,
)


async def list_snapshots(
    *,
    page: int = 1,
    limit: int = 100,
    name: str | None = None,
    sort: str | None = None,
    order: str | None = None,
) -> SnapshotPage:
    """One page of snapshots, optionally those whose name contains `name`."""
    params = [("page", str(page)), ("limit", str(limit))]
    params += [(k, v) for k, v in (("name", name), ("sort", sort), ("order", order)) if v]
    return SnapshotPage.from_api(await request("GET", "/snapshots", params=params))


async def get_snapshot(id_or_name: str) -> Snapshot:
    """One snapshot by id or name."""
    return Snapshot.from_api(await request("GET", f"/snapshots/{quote(id_or_name, safe='')}"))


async def list_volumes(*, include_deleted: bool = False) -> list[Volume]:
    """Every volume (Daytona does not paginate them)."""
    params = [("includeDeleted", "true")] if include_deleted else None
    data = await request("GET", "/volumes", params=params)
    if not isinstance(data, list):
        raise Unavailable("Daytona sent a malformed volume list.")
    return [Volume.from_api(item) for item in data]


async def get_volume(volume_id: str) -> Volume:
    """One volume by id."""
    return Volume.from_api(await request("GET", f"/volumes/{quote(volume_id, safe='')}"))


async def list_organizations() -> list[Organization]:
    """The organizations the API key can see (an API key sees its own)."""
    data = await request("GET", "/organizations")
    if not isinstance(data, list):
        raise Unavailable("Daytona sent a malformed organization list.")
    return [Organization.from_api(item) for item in data]


async def engine_host() -> EngineHost | None:
    """The embedded engine's host checks; None when Daytona is not the embedded engine."""
    try:
        host = EngineHost.from_api(await request("GET", "/sandbar/engine"))
    except NotFound:
        return None
    return host if host.checks else None


async def usage(organization_id: str) -> Usage:
    """Current usage against the organization's quotas, per region."""
    path = f"/organizations/{quote(organization_id, safe='')}/usage"
    return Usage.from_api(await request("GET", path))


async def audit_log(
    organization_id: str,
    *,
    page: int = 1,
    limit: int = 100,
    since: datetime | None = None,
    until: datetime | None = None,
    next_token: str | None = None,
) -> AuditLogPage:
    """One page of Daytona's own audit log for the organization, newest first."""
    params = [("page", str(page)), ("limit", str(min(limit, 200)))]
    if since:
        params.append(("from", since.isoformat()))
    if until:
        params.append(("to", until.isoformat()))
    if next_token:
        params.append(("nextToken", next_token))
    path = f"/audit/organizations/{quote(organization_id, safe='')}"
    return AuditLogPage.from_api(await request("GET", path, params=params))
