"""Volumes: host directories shared between sandboxes, in Daytona's paths and states.

A volume is a directory under the engine's data directory, owned by the sandbox uid
and bound read-write at ``mountPath`` (optionally a ``subpath`` of it) into every
sandbox created with it. Deleting a volume that a sandbox still uses is refused.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from dashboard.engine import usage
from dashboard.engine.errors import BadRequest, Conflict, NotFound
from dashboard.engine.runtime.mounts import Mount
from dashboard.engine.store import iso, new_id, now
from dashboard.engine.validation import Body, Query, read_json

SCHEMA = """
CREATE TABLE IF NOT EXISTS volumes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    error_reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_used_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS volumes_live_name ON volumes (name) WHERE state != 'deleted';
CREATE TABLE IF NOT EXISTS sandbox_volumes (
    sandbox_id TEXT NOT NULL,
    volume_id TEXT NOT NULL,
    mount_path TEXT NOT NULL,
    subpath TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (sandbox_id, mount_path)
);
CREATE INDEX IF NOT EXISTS sandbox_volumes_volume ON sandbox_volumes (volume_id);
"""
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
MAX_MOUNTS = 16
# Where a volume may not be mounted: the system directories (a volume there would
# shadow the programs and devices a sandbox runs on) and the roots of home and /tmp.
SYSTEM_DIRS = (
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/proc",
    "/dev", "/sys", "/run", "/boot", "/var/run",
)  # fmt: skip
EXACT_FORBIDDEN = ("/", "/home", "/home/daytona", "/tmp", "/root", "/var", "/var/tmp")  # noqa: S108

# notify(event, build) where build(toolbox_url) returns the payload.
Notify = Callable[[str, Callable[[str], Any]], None]


@dataclass
class Volume:
    """One row of the volumes table."""

    id: str
    name: str
    state: str
    created_at: str
    updated_at: str
    error_reason: str | None = None
    last_used_at: str | None = None


@dataclass(frozen=True)
class VolumeMount:
    """A volume as a sandbox's create request asked for it."""

    volume_id: str
    mount_path: str
    subpath: str = ""

    def dto(self) -> dict[str, Any]:
        """``SandboxVolume`` as Daytona shows it on a sandbox."""
        dto: dict[str, Any] = {"volumeId": self.volume_id, "mountPath": self.mount_path}
        if self.subpath:
            dto["subpath"] = self.subpath
        return dto


def check_mount_path(path: object) -> str:
    """A normalized absolute path outside the system directories, or a 400."""
    if not isinstance(path, str) or not path:
        raise BadRequest("mountPath must be a non-empty string")
    if "\x00" in path or len(path) > 1024:
        raise BadRequest("mountPath is not a valid path")
    if not path.startswith("/"):
        raise BadRequest(f"mountPath {path} must be an absolute path")
    parts = path.split("/")
    if ".." in parts or "." in parts or posixpath.normpath(path) != path:
        raise BadRequest(f"mountPath {path} must be a normalized path without '.' or '..'")
    if path in EXACT_FORBIDDEN:
        raise BadRequest(f"mountPath {path} cannot be used: it is a system directory")
    for system in SYSTEM_DIRS:
        if path == system or path.startswith(system + "/"):
            raise BadRequest(f"mountPath {path} cannot be inside the system directory {system}")
    return path


def check_subpath(subpath: object) -> str:
    """A relative path inside the volume ('' for the whole volume), or a 400."""
    if subpath is None:
        return ""
    if not isinstance(subpath, str) or "\x00" in subpath or len(subpath) > 1024:
        raise BadRequest("subpath must be a string")
    cleaned = subpath.strip("/")
    if subpath.startswith("/") or any(p in (".", "..") for p in cleaned.split("/") if p):
        raise BadRequest(f"subpath {subpath} must be a relative path without '.' or '..'")
    return "/".join(p for p in cleaned.split("/") if p)


def check_name(name: str) -> str:
    """Volume names: 1-63 letters, digits, '.', '_' or '-'."""
    if not 0 < len(name) <= 63 or not set(name) <= NAME_CHARS or name[0] in ".-":
        raise BadRequest(
            "name must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


class Volumes:
    """The volumes table, their directories, and which sandbox mounts which."""

    def __init__(
        self,
        db: sqlite3.Connection,
        directory: Path,
        owner_uid: int,
        organization_id: str,
        notify: Notify,
    ) -> None:
        self.db = db
        self.db.executescript(SCHEMA)
        self.directory = directory
        self.owner_uid = owner_uid
        self.organization_id = organization_id
        self.notify = notify

    # -- records ---------------------------------------------------------------

    def dto(self, volume: Volume) -> dict[str, Any]:
        """``VolumeDto``."""
        return {
            "id": volume.id,
            "name": volume.name,
            "organizationId": self.organization_id,
            "state": volume.state,
            "createdAt": volume.created_at,
            "updatedAt": volume.updated_at,
            "lastUsedAt": volume.last_used_at,
            "errorReason": volume.error_reason,
        }

    def get(self, id_or_name: str, *, by_name: bool = False) -> Volume | None:
        """A volume that is not deleted, by id (or name)."""
        column = "name" if by_name else "id"
        row = self.db.execute(
            f"SELECT * FROM volumes WHERE {column} = ? AND state != 'deleted'",  # noqa: S608
            (id_or_name,),
        ).fetchone()
        return Volume(**dict(row)) if row else None

    def find(self, id_or_name: str, *, by_name: bool = False) -> Volume:
        """A volume or a 404."""
        volume = self.get(id_or_name, by_name=by_name)
        if volume is None:
            what = "name" if by_name else "ID"
            raise NotFound(f"Volume with {what} {id_or_name} not found")
        return volume

    def list(self, *, include_deleted: bool = False) -> list[Volume]:
        """Every volume, oldest first."""
        sql = "SELECT * FROM volumes"
        if not include_deleted:
            sql += " WHERE state != 'deleted'"
        rows = self.db.execute(sql + " ORDER BY created_at, id").fetchall()
        return [Volume(**dict(row)) for row in rows]

    def path(self, volume_id: str) -> Path:
        """The volume's directory on the host."""
        return self.directory / volume_id

    def _set_state(self, volume: Volume, state: str, error: str | None = None) -> None:
        old = volume.state
        volume.state, volume.error_reason, volume.updated_at = state, error, iso(now())
        self.db.execute(
            "UPDATE volumes SET state = ?, error_reason = ?, updated_at = ? WHERE id = ?",
            (state, error, volume.updated_at, volume.id),
        )
        if old != state:
            dto = self.dto(volume)
            self.notify(
                "volume.state.updated",
                lambda _: {"volume": dto, "oldState": old, "newState": state},
            )

    # -- create and delete -----------------------------------------------------

    def create(self, name: str) -> Volume:
        """Create the directory and the record (ready at once: a directory is instant)."""
        stamp = iso(now())
        volume = Volume(new_id(), check_name(name), "pending_create", stamp, stamp)
        try:
            self.db.execute(
                "INSERT INTO volumes (id, name, state, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (volume.id, volume.name, volume.state, stamp, stamp),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"Volume with name {name} already exists") from None
        created = self.dto(volume)
        self.notify("volume.created", lambda _: created)
        self._set_state(volume, "creating")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
            path = self.path(volume.id)
            path.mkdir()
            os.chown(path, self.owner_uid, self.owner_uid)
            os.chmod(path, 0o755)  # noqa: S103 -- sandboxes (one uid) read and write it
        except OSError as error:
            self._set_state(volume, "error", f"could not create the volume directory: {error}")
            return volume
        self._set_state(volume, "ready")
        return volume

    def in_use_by(self, volume_id: str) -> list[str]:
        """Live sandboxes that mount the volume."""
        rows = self.db.execute(
            "SELECT DISTINCT s.id FROM sandbox_volumes v JOIN sandboxes s ON s.id = v.sandbox_id"
            " WHERE v.volume_id = ? AND s.state != 'destroyed'",
            (volume_id,),
        ).fetchall()
        return [row[0] for row in rows]

    async def delete(self, volume_id: str) -> Volume:
        """Delete an unused volume and its files; a mounted one is a 409."""
        volume = self.find(volume_id)
        if volume.state in ("pending_delete", "deleting"):
            raise Conflict(f"Volume {volume.id} is already being deleted")
        users = self.in_use_by(volume.id)
        if users:
            raise Conflict(
                f"Volume {volume.name} is in use by {len(users)} sandbox(es): {', '.join(users)}"
            )
        self._set_state(volume, "pending_delete")
        self._set_state(volume, "deleting")
        await asyncio.to_thread(shutil.rmtree, self.path(volume.id), True)
        self._set_state(volume, "deleted")
        return volume

    # -- sandboxes -------------------------------------------------------------

    def parse_mounts(self, raw: object) -> list[VolumeMount]:
        """Validate a create request's ``volumes`` (400 on anything wrong)."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise BadRequest("volumes must be an array")
        if len(raw) > MAX_MOUNTS:
            raise BadRequest(f"volumes must have at most {MAX_MOUNTS} entries")
        mounts: list[VolumeMount] = []
        for item in raw:
            body = Body(item, {"volumeId", "mountPath", "subpath"})
            volume_ref = body.string("volumeId", required=True, max_length=255)
            assert volume_ref is not None
            mount_path = check_mount_path(body.raw("mountPath"))
            subpath = check_subpath(body.raw("subpath"))
            volume = self.get(volume_ref) or self.get(volume_ref, by_name=True)
            if volume is None:
                raise BadRequest(f"Volume {volume_ref} not found")
            if volume.state != "ready":
                raise BadRequest(f"Volume {volume.name} is not ready (state: {volume.state})")
            mounts.append(VolumeMount(volume.id, mount_path, subpath))
        paths = [m.mount_path for m in mounts]
        if len(set(paths)) != len(paths):
            raise BadRequest("volumes: two volumes cannot be mounted at the same mountPath")
        return mounts

    def attach(self, sandbox_id: str, mounts: list[VolumeMount]) -> None:
        """Record a new sandbox's mounts (before it is started)."""
        stamp = iso(now())
        for mount in mounts:
            self.db.execute(
                "INSERT INTO sandbox_volumes (sandbox_id, volume_id, mount_path, subpath)"
                " VALUES (?, ?, ?, ?)",
                (sandbox_id, mount.volume_id, mount.mount_path, mount.subpath),
            )
            self.db.execute(
                "UPDATE volumes SET last_used_at = ? WHERE id = ?", (stamp, mount.volume_id)
            )
            volume = self.get(mount.volume_id)
            if volume is not None:
                dto = self.dto(volume)
                self.notify("volume.lastUsedAt.updated", lambda _, dto=dto: dto)

    def mounts(self, sandbox_id: str) -> list[VolumeMount]:
        """A sandbox's volumes, in the order they must be bound (parents first)."""
        rows = self.db.execute(
            "SELECT volume_id, mount_path, subpath FROM sandbox_volumes WHERE sandbox_id = ?",
            (sandbox_id,),
        ).fetchall()
        mounts = [VolumeMount(row[0], row[1], row[2]) for row in rows]
        return sorted(mounts, key=lambda m: (m.mount_path.count("/"), m.mount_path))

    def runtime_mounts(self, sandbox_id: str) -> tuple[Mount, ...]:
        """What the runtime binds for a sandbox."""
        return tuple(
            Mount(str(self.path(m.volume_id)), m.subpath, m.mount_path)
            for m in self.mounts(sandbox_id)
        )

    def detach(self, sandbox_id: str) -> None:
        """Forget a destroyed sandbox's mounts."""
        self.db.execute("DELETE FROM sandbox_volumes WHERE sandbox_id = ?", (sandbox_id,))


# -- routes -------------------------------------------------------------------------


def volumes_of(request: Request) -> Volumes:
    """The engine's volumes."""
    volumes: Volumes = request.app.state.engine.volumes
    return volumes


async def list_volumes(request: Request) -> Response:
    """GET /volumes?includeDeleted=: every volume (Daytona does not paginate them)."""
    query = Query(request.query_params, {"includeDeleted"})
    include = bool(query.boolean("includeDeleted", False))
    volumes = volumes_of(request)
    return JSONResponse([volumes.dto(v) for v in volumes.list(include_deleted=include)])


async def create_volume(request: Request) -> Response:
    """POST /volumes {name}: answers 200 with the VolumeDto (the SDK needs exactly 200)."""
    Query(request.query_params, set())
    body = Body(await read_json(request), {"name"})
    name = body.string("name", required=True, max_length=255)
    assert name is not None
    engine = request.app.state.engine
    usage.check_volume(engine.store.db, engine.quotas)
    volumes = volumes_of(request)
    return JSONResponse(volumes.dto(volumes.create(name)))


async def get_volume(request: Request) -> Response:
    """GET /volumes/{volumeId}."""
    Query(request.query_params, set())
    volumes = volumes_of(request)
    return JSONResponse(volumes.dto(volumes.find(request.path_params["volumeId"])))


async def get_volume_by_name(request: Request) -> Response:
    """GET /volumes/by-name/{name}."""
    Query(request.query_params, set())
    volumes = volumes_of(request)
    return JSONResponse(volumes.dto(volumes.find(request.path_params["name"], by_name=True)))


async def delete_volume(request: Request) -> Response:
    """DELETE /volumes/{volumeId}: 409 while a sandbox mounts it."""
    Query(request.query_params, set())
    await volumes_of(request).delete(request.path_params["volumeId"])
    return Response(status_code=204)


def routes() -> list[BaseRoute]:
    """Volume routes, mounted at /api."""
    return [
        Route("/volumes", list_volumes, methods=["GET"]),
        Route("/volumes", create_volume, methods=["POST"]),
        Route("/volumes/by-name/{name}", get_volume_by_name, methods=["GET"]),
        Route("/volumes/{volumeId}", get_volume, methods=["GET"]),
        Route("/volumes/{volumeId}", delete_volume, methods=["DELETE"]),
    ]
