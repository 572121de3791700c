"""Sandboxes: list, read, create and every lifecycle and settings call."""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from dashboard.daytona.client import Unavailable, request
from dashboard.daytona.models import Sandbox, SandboxPage, VolumeMount

# Daytona answers a create from a snapshot only once the sandbox started (up to 30 s).
CREATE_TIMEOUT = 60.0
SORTS = ("name", "createdAt", "lastActivityAt", "cpu", "memoryGib", "diskGib")
MAX_PAGE = 200


@dataclass(frozen=True)
class SandboxQuery:
    """The filters, sort and page of `GET /sandbox`; None or empty means "not filtered"."""

    cursor: str | None = None
    limit: int = 100
    id: str | None = None
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    states: tuple[str, ...] = ()
    snapshots: tuple[str, ...] = ()
    region_ids: tuple[str, ...] = ()
    min_cpu: int | None = None
    max_cpu: int | None = None
    min_memory_gib: int | None = None
    max_memory_gib: int | None = None
    min_disk_gib: int | None = None
    max_disk_gib: int | None = None
    is_public: bool | None = None
    is_recoverable: bool | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    last_event_after: datetime | None = None
    last_event_before: datetime | None = None
    sort: str | None = None
    order: str | None = None

    def params(self) -> list[tuple[str, str]]:
        """The query string, arrays as repeated keys, as Daytona expects."""
        params: list[tuple[str, str]] = [("limit", str(max(1, min(self.limit, MAX_PAGE))))]
        scalars: dict[str, Any] = {
            "cursor": self.cursor,
            "id": self.id,
            "name": self.name,
            "minCpu": self.min_cpu,
            "maxCpu": self.max_cpu,
            "minMemoryGiB": self.min_memory_gib,
            "maxMemoryGiB": self.max_memory_gib,
            "minDiskGiB": self.min_disk_gib,
            "maxDiskGiB": self.max_disk_gib,
            "isPublic": self.is_public,
            "isRecoverable": self.is_recoverable,
            "createdAtAfter": self.created_after,
            "createdAtBefore": self.created_before,
            "lastEventAfter": self.last_event_after,
            "lastEventBefore": self.last_event_before,
            "sort": self.sort,
            "order": self.order,
        }
        for key, value in scalars.items():
            if value is None or value == "":
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, datetime):
                value = value.isoformat()
            params.append((key, str(value)))
        if self.labels:
            params.append(("labels", json.dumps(self.labels, separators=(",", ":"))))
        params += [("states", s) for s in self.states]
        params += [("snapshots", s) for s in self.snapshots]
        params += [("regionIds", r) for r in self.region_ids]
        return params


def _path(sandbox_id: str, *rest: str) -> str:
    return "/".join(["/sandbox", quote(sandbox_id, safe=""), *rest])


async def list_sandboxes(query: SandboxQuery | None = None) -> SandboxPage:
    """One page of sandboxes matching `query`, with the cursor of the next page."""
    params = (query or SandboxQuery()).params()
    body = await request("GET", "/sandbox", params=params, raw=True)
    if body is None:
        raise Unavailable("Daytona sent a malformed sandbox list.")
    return SandboxPage.from_json(body)


async def list_all_sandboxes(
    query: SandboxQuery | None = None, *, limit: int = 10_000
) -> list[Sandbox]:
    """Every sandbox matching `query`, following cursors (at most `limit` of them)."""
    query = query or SandboxQuery()
    found: list[Sandbox] = []
    cursor: str | None = None
    while True:
        page = await list_sandboxes(
            SandboxQuery(**{**query.__dict__, "cursor": cursor, "limit": MAX_PAGE})
        )
        found += page.items
        if not page.next_cursor or len(found) >= limit or page.next_cursor == cursor:
            return found[:limit]
        cursor = page.next_cursor


async def get_sandbox(sandbox_id: str) -> Sandbox:
    """One sandbox by id or name."""
    return Sandbox.from_api(await request("GET", _path(sandbox_id)))


async def create_sandbox(
    *,
    name: str | None = None,
    snapshot: str | None = None,
    env: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    cpu: int | None = None,
    memory: int | None = None,
    disk: int | None = None,
    public: bool = False,
    network_block_all: bool = False,
    auto_stop_interval: int | None = None,
    auto_archive_interval: int | None = None,
    auto_delete_interval: int | None = None,
    volumes: Iterable[VolumeMount] = (),
    target: str | None = None,
) -> Sandbox:
    """A new sandbox; from a snapshot Daytona answers once it has started."""
    body: dict[str, Any] = {
        "name": name,
        "snapshot": snapshot,
        "env": env or {},
        "labels": labels or {},
        "public": public,
        "networkBlockAll": network_block_all,
        "cpu": cpu,
        "memory": memory,
        "disk": disk,
        "autoStopInterval": auto_stop_interval,
        "autoArchiveInterval": auto_archive_interval,
        "autoDeleteInterval": auto_delete_interval,
        "target": target,
        "volumes": [
            {
                "volumeId": v.volume_id,
                "mountPath": v.mount_path,
                **({"subpath": v.subpath} if v.subpath else {}),
            }
            for v in volumes
        ],
    }
    body = {k: v for k, v in body.items() if v is not None and v != []}
    return Sandbox.from_api(await request("POST", "/sandbox", json=body, time_limit=CREATE_TIMEOUT))


async def _lifecycle(
    sandbox_id: str, verb: str, params: list[tuple[str, str]] | None = None
) -> Sandbox:
    return Sandbox.from_api(await request("POST", _path(sandbox_id, verb), params=params))


async def start_sandbox(sandbox_id: str) -> Sandbox:
    """Start a stopped sandbox, restore an archived one, resume a paused one."""
    return await _lifecycle(sandbox_id, "start")


async def stop_sandbox(sandbox_id: str, *, force: bool = False) -> Sandbox:
    """Stop a started sandbox (force: SIGKILL)."""
    return await _lifecycle(sandbox_id, "stop", [("force", "true")] if force else None)


async def archive_sandbox(sandbox_id: str) -> Sandbox:
    """Move a stopped sandbox to archive storage."""
    return await _lifecycle(sandbox_id, "archive")


async def recover_sandbox(sandbox_id: str) -> Sandbox:
    """Recover a sandbox in a recoverable error state."""
    return await _lifecycle(sandbox_id, "recover")


async def delete_sandbox(sandbox_id: str) -> Sandbox | None:
    """Delete a sandbox; Daytona answers with it `destroying` (or with nothing)."""
    data = await request("DELETE", _path(sandbox_id))
    return Sandbox.from_api(data) if data else None


async def replace_labels(sandbox_id: str, labels: dict[str, str]) -> Sandbox:
    """Replace all of a sandbox's labels with `labels`."""
    data = await request("PUT", _path(sandbox_id, "labels"), json={"labels": labels})
    # Daytona's own reply is the sandbox, but older versions sent only the labels.
    if isinstance(data, dict) and "id" not in data:
        return await get_sandbox(sandbox_id)
    return Sandbox.from_api(data)


async def set_auto_stop(sandbox_id: str, minutes: int) -> Sandbox:
    """Stop after `minutes` without activity; 0 turns auto-stop off."""
    return await _lifecycle(sandbox_id, f"autostop/{int(minutes)}")


async def set_auto_archive(sandbox_id: str, minutes: int) -> Sandbox:
    """Archive after `minutes` stopped; 0 means the maximum."""
    return await _lifecycle(sandbox_id, f"autoarchive/{int(minutes)}")


async def set_auto_delete(sandbox_id: str, minutes: int) -> Sandbox:
    """Delete after `minutes` stopped; 0 deletes on stop, negative turns it off."""
    return await _lifecycle(sandbox_id, f"autodelete/{int(minutes)}")


async def set_public(sandbox_id: str, public: bool) -> Sandbox:
    """Make the sandbox's preview URLs public or private."""
    return await _lifecycle(sandbox_id, f"public/{'true' if public else 'false'}")


async def set_network_settings(
    sandbox_id: str,
    *,
    network_block_all: bool | None = None,
    network_allow_list: str | None = None,
) -> Sandbox:
    """Block all network, or allow only the CIDRs in `network_allow_list` (comma-separated)."""
    body: dict[str, Any] = {}
    if network_block_all is not None:
        body["networkBlockAll"] = network_block_all
    if network_allow_list is not None:
        body["networkAllowList"] = network_allow_list
    return Sandbox.from_api(await request("POST", _path(sandbox_id, "network-settings"), json=body))


async def resize_sandbox(
    sandbox_id: str, *, cpu: int | None = None, memory: int | None = None, disk: int | None = None
) -> Sandbox:
    """Change a sandbox's CPU, memory (GiB) or disk (GiB); Daytona only lets them grow."""
    body = {k: v for k, v in {"cpu": cpu, "memory": memory, "disk": disk}.items() if v is not None}
    return Sandbox.from_api(await request("POST", _path(sandbox_id, "resize"), json=body))
