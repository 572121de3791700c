"""Snapshots: read-only root filesystems that sandboxes are made from.

A snapshot is a directory under the engine's data directory. Sandboxes made from it
mount it as the lower layer of an overlay (see ``runtime/layers.py``), so it is shared
and never written. ``imageName`` names the source:

- an OCI image with a tag or digest (``python:3.12-slim``, ``127.0.0.1:5000/tools:1``):
  pulled from its registry with skopeo and unpacked with umoci (``oci.py``); the
  snapshot goes ``pending`` -> ``pulling`` -> ``active``, or ``error`` with skopeo's
  reason, as Daytona's does; the image's environment starts its sandboxes' environment;
- ``dir:/absolute/path``: a copy of a directory on the engine's machine;
- ``tar:/absolute/path.tar[.gz|.xz|...]``: a tarball on the engine's machine, unpacked;
- ``debian`` or ``debian:<suite>``: a minimal Debian built with debootstrap from
  ``SANDBAR_DEBIAN_MIRROR`` (refused as ``build_failed`` when the mirror is unreachable);
- ``POST /sandbox/{id}/snapshot``: a sandbox's current files (its snapshot's root,
  or the default image, with the sandbox's changes and its home).

The default snapshot ``sandbar-default`` is the engine's own Debian image (``image.py``),
built once and kept outside this directory. A snapshot without a shell of its own gets
the host's ``/usr`` read-only; one without ``etc/passwd`` gets the engine's ``/etc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
import shutil
import sqlite3
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from dashboard.engine import oci, prereqs, usage
from dashboard.engine.config import ConfigError, env_float, env_int, env_str
from dashboard.engine.debian import (
    DEFAULT_SUITE,
    add_sandbox_user,
    apt_mirror,
    debootstrap_command,
    mirror_reachable,
    tree_size,
)
from dashboard.engine.errors import ApiError, BadRequest, Conflict, NotFound
from dashboard.engine.helpers import tied_to_engine
from dashboard.engine.runtime import rootfs
from dashboard.engine.runtime.runtime import unmount_all_under
from dashboard.engine.store import iso, new_id, now
from dashboard.engine.validation import Body, Query, read_json

if TYPE_CHECKING:
    from dashboard.engine.image import DefaultImage
    from dashboard.engine.runtime import SandboxFiles
    from dashboard.engine.runtime.layers import RootLayer
    from dashboard.engine.store import SandboxRecord

log = logging.getLogger("sandbar.engine")

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    image_name TEXT,
    general INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    error_reason TEXT,
    size REAL,
    entrypoint TEXT,
    cpu INTEGER NOT NULL,
    gpu INTEGER NOT NULL DEFAULT 0,
    mem INTEGER NOT NULL,
    disk INTEGER NOT NULL,
    source_sandbox_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_used_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS snapshots_name ON snapshots (name);
"""
DEFAULT_ID = "00000000-0000-4000-8000-000000000000"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,254}$")
SUITE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
TERMINAL = ("active", "inactive", "error", "build_failed")
SORTS = {"name": "name", "state": "state", "lastUsedAt": "last_used_at", "createdAt": "created_at"}
COPY_BATCH = 500  # paths per cp command line when capturing a sandbox
CAPTURE = ("snapshotting", "error")  # a capture's state while it runs, and on failure
FOLLOW_POLL = 0.2
INTERRUPTED = "the build was interrupted by an engine restart; its partial files were removed"

Notify = Callable[[str, Callable[[str], Any]], None]


class Forbidden(ApiError):
    """The action is not allowed on this snapshot."""

    status = 403


@dataclass
class Snapshot:
    """One row of the snapshots table."""

    id: str
    name: str
    image_name: str | None
    general: bool
    state: str
    error_reason: str | None
    size: float | None
    entrypoint: str | None
    cpu: int
    gpu: int
    mem: int
    disk: int
    source_sandbox_id: str | None
    created_at: str
    updated_at: str
    last_used_at: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Snapshot:
        """Build a record from a database row."""
        data = dict(row)
        data["general"] = bool(data["general"])
        return cls(**data)


@dataclass(frozen=True)
class Source:
    """Where a snapshot's files come from."""

    kind: str  # dir, tar, debian, image, sandbox
    value: str


def parse_source(image_name: str) -> Source:
    """Validate ``imageName`` as a source this engine can build from (400 otherwise)."""
    if image_name.endswith(":latest"):
        raise BadRequest('Images with tag ":latest" are not allowed')
    kind, _, value = image_name.partition(":")
    if kind in ("dir", "tar"):
        if not value.startswith("/") or "\x00" in value:
            raise BadRequest(f"{kind}: sources need an absolute path on the engine's machine")
        path = Path(value)
        if kind == "dir" and not path.is_dir():
            raise BadRequest(f"Snapshot source {image_name} is not a directory")
        if kind == "tar" and not path.is_file():
            raise BadRequest(f"Snapshot source {image_name} is not a file")
        return Source(kind, str(path.resolve()))
    if kind == "debian":
        suite = value or DEFAULT_SUITE
        if not SUITE_PATTERN.match(suite):
            raise BadRequest(f"{suite} is not a Debian suite name (e.g. bookworm)")
        return Source("debian", suite)
    return Source("image", oci.parse_reference(image_name))


class Snapshots:
    """The snapshots table, their files and their builds."""

    def __init__(
        self,
        db: sqlite3.Connection,
        directory: Path,
        organization_id: str,
        notify: Notify,
        *,
        defaults: tuple[int, int, int],
        default_image: DefaultImage,
        owner_uid: int = 0,
    ) -> None:
        self.db = db
        self.db.executescript(SCHEMA)
        self.directory = directory
        self.organization_id = organization_id
        self.notify = notify
        self.defaults = defaults
        self.owner_uid = owner_uid
        self.default_image = default_image
        self.mirror = env_str("SANDBAR_DEBIAN_MIRROR", "") or apt_mirror()
        self._builds: dict[str, asyncio.Task[None]] = {}
        stamp = iso(now())
        cpu, mem, disk = defaults
        self.db.execute(
            "INSERT OR IGNORE INTO snapshots (id, name, image_name, general, state, cpu, mem,"
            " disk, created_at, updated_at) VALUES (?, ?, NULL, 1, 'active', ?, ?, ?, ?, ?)",
            (DEFAULT_ID, rootfs.DEFAULT_SNAPSHOT, cpu, mem, disk, stamp, stamp),
        )
        # The default snapshot follows the configured defaults and the image on disk,
        # which may have changed (or been rebuilt) since the last start.
        info = default_image.info()
        self.db.execute(
            "UPDATE snapshots SET cpu = ?, mem = ?, disk = ?, image_name = ?, state = ?,"
            " error_reason = ?, size = ? WHERE id = ?",
            (
                cpu, mem, disk, default_image.image_name,
                "active" if info else "error",
                None if info else default_image.missing_message(),
                round(info["sizeBytes"] / 2**30, 6) if info else None,
                DEFAULT_ID,
            ),
        )  # fmt: skip
        self._fail_interrupted()

    def _fail_interrupted(self) -> None:
        """End the builds the previous engine was running, lost with it: a pull or a
        capture in ``error`` (as Daytona's pulls), another build in ``build_failed``,
        with the reason; their partial files go (the build log stays)."""
        rows = self.db.execute(
            "SELECT id, image_name FROM snapshots"
            " WHERE state IN ('pending', 'building', 'pulling', 'snapshotting')"
        ).fetchall()
        for snapshot_id, image_name in rows:
            kind = (image_name or "").partition(":")[0]
            failed = "build_failed" if kind in ("dir", "tar", "debian") else "error"
            folder = self.directory / snapshot_id
            if folder.is_dir():
                unmount_all_under(folder)  # a debootstrap cut short leaves its /proc
                for entry in folder.iterdir():
                    if entry == self.log_path(snapshot_id):
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
            folder.mkdir(parents=True, exist_ok=True)
            self._log(self.log_path(snapshot_id), f"build failed: {INTERRUPTED}")
            self.db.execute(
                "UPDATE snapshots SET state = ?, error_reason = ?, updated_at = ? WHERE id = ?",
                (failed, INTERRUPTED, iso(now()), snapshot_id),
            )

    # -- records ---------------------------------------------------------------

    def dto(self, snapshot: Snapshot) -> dict[str, Any]:
        """``SnapshotDto``."""
        return {
            "id": snapshot.id,
            "organizationId": None if snapshot.general else self.organization_id,
            "general": snapshot.general,
            "name": snapshot.name,
            "imageName": snapshot.image_name,
            "ref": None if snapshot.general else f"local/{snapshot.id}",
            "state": snapshot.state,
            "size": snapshot.size,
            "entrypoint": json.loads(snapshot.entrypoint) if snapshot.entrypoint else None,
            "cpu": snapshot.cpu,
            "gpu": snapshot.gpu,
            "mem": snapshot.mem,
            "disk": snapshot.disk,
            "errorReason": snapshot.error_reason,
            "createdAt": snapshot.created_at,
            "updatedAt": snapshot.updated_at,
            "lastUsedAt": snapshot.last_used_at,
            "sourceSandboxId": snapshot.source_sandbox_id,
            "buildInfo": None,
            "regionIds": [usage.REGION],
            "initialRunnerId": "local",
            "sandboxClass": "container",
        }

    def get(self, id_or_name: str) -> Snapshot | None:
        """A snapshot by id, else by name."""
        row = self.db.execute(
            "SELECT * FROM snapshots WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1",
            (id_or_name, id_or_name, id_or_name),
        ).fetchone()
        return Snapshot.from_row(row) if row else None

    def find(self, id_or_name: str) -> Snapshot:
        """A snapshot or a 404."""
        snapshot = self.get(id_or_name)
        if snapshot is None:
            raise NotFound(f"Snapshot {id_or_name} not found")
        return snapshot

    def rootfs(self, snapshot: Snapshot) -> Path:
        """The snapshot's root filesystem on the host."""
        return self.directory / snapshot.id / "rootfs"

    def image_config(self, snapshot: Snapshot) -> oci.ImageConfig:
        """The config of the image a snapshot was pulled from (empty for other sources)."""
        if snapshot.general:
            return oci.ImageConfig()
        return oci.ImageConfig.load(self.directory / snapshot.id / "image.json")

    def sandbox_env(self, snapshot: Snapshot) -> dict[str, str]:
        """The environment a sandbox made from the snapshot starts with (its image's)."""
        return self.image_config(snapshot).sandbox_env()

    def log_path(self, snapshot_id: str) -> Path:
        """The snapshot's build log (the default snapshot's: its image's debootstrap run)."""
        if snapshot_id == DEFAULT_ID:
            return self.default_image.log_path
        return self.directory / snapshot_id / "build.log"

    def _set_state(self, snapshot: Snapshot, state: str, **changes: Any) -> None:
        old = snapshot.state
        snapshot.state = state
        snapshot.error_reason = changes.pop("error_reason", None)
        for key, value in changes.items():
            setattr(snapshot, key, value)
        snapshot.updated_at = iso(now())
        self.db.execute(
            "UPDATE snapshots SET state = ?, error_reason = ?, size = ?, updated_at = ?,"
            " last_used_at = ? WHERE id = ?",
            (
                state,
                snapshot.error_reason,
                snapshot.size,
                snapshot.updated_at,
                snapshot.last_used_at,
                snapshot.id,
            ),
        )
        if old != state:
            dto = self.dto(snapshot)
            self.notify(
                "snapshot.state.updated",
                lambda _: {"snapshot": dto, "oldState": old, "newState": state},
            )

    def in_use_by(self, snapshot: Snapshot) -> list[str]:
        """Live sandboxes made from the snapshot."""
        rows = self.db.execute(
            "SELECT id FROM sandboxes WHERE snapshot = ? AND state != 'destroyed'",
            (snapshot.name,),
        ).fetchall()
        return [row[0] for row in rows]

    # -- for sandboxes ---------------------------------------------------------

    def for_sandbox(self, id_or_name: str) -> tuple[Snapshot, str]:
        """The active snapshot a new sandbox is made from, and its root filesystem."""
        snapshot = self.get(id_or_name)
        if snapshot is None:
            raise NotFound(f"Snapshot {id_or_name} not found")
        if snapshot.state != "active":
            reason = f": {snapshot.error_reason}" if snapshot.error_reason else ""
            raise BadRequest(f"Snapshot {id_or_name} is {snapshot.state}{reason}")
        if snapshot.general and self.default_image.info() is None:
            raise BadRequest(f"Snapshot {id_or_name}: {self.default_image.missing_message()}")
        return snapshot, self._rootfs_path(snapshot)

    def rootfs_for(self, name: str) -> str:
        """The root filesystem a sandbox made from ``name`` runs on (None: no such snapshot)."""
        snapshot = self.get(name)
        if snapshot is None:
            # A sandbox records its snapshot's name; without one it runs on the default.
            return str(self.default_image.rootfs)
        return self._rootfs_path(snapshot)

    def _rootfs_path(self, snapshot: Snapshot) -> str:
        return str(self.default_image.rootfs if snapshot.general else self.rootfs(snapshot))

    def mark_used(self, snapshot: Snapshot) -> None:
        """Record that a sandbox was made from the snapshot."""
        stamp = iso(now())
        self.db.execute("UPDATE snapshots SET last_used_at = ? WHERE id = ?", (stamp, snapshot.id))

    # -- create, delete, (de)activate -----------------------------------------

    def _insert(
        self, name: str, image_name: str, resources: tuple[int, int, int], **extra: Any
    ) -> Snapshot:
        if not NAME_PATTERN.match(name):
            raise BadRequest("name must be 1-255 letters, digits or . _ : / @ -")
        stamp = iso(now())
        cpu, mem, disk = resources
        snapshot = Snapshot(
            id=new_id(),
            name=name,
            image_name=image_name,
            general=False,
            state="pending",
            error_reason=None,
            size=None,
            entrypoint=extra.get("entrypoint"),
            cpu=cpu,
            gpu=0,
            mem=mem,
            disk=disk,
            source_sandbox_id=extra.get("source_sandbox_id"),
            created_at=stamp,
            updated_at=stamp,
            last_used_at=None,
        )
        try:
            self.db.execute(
                "INSERT INTO snapshots (id, name, image_name, general, state, entrypoint, cpu,"
                " gpu, mem, disk, source_sandbox_id, created_at, updated_at)"
                " VALUES (?, ?, ?, 0, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
                (
                    snapshot.id, name, image_name, snapshot.state, snapshot.entrypoint,
                    cpu, mem, disk, snapshot.source_sandbox_id, stamp, stamp,
                ),
            )  # fmt: skip
        except sqlite3.IntegrityError:
            raise Conflict(f"Snapshot with name {name} already exists") from None
        (self.directory / snapshot.id).mkdir(parents=True, exist_ok=True)
        self.log_path(snapshot.id).touch()
        created = self.dto(snapshot)
        self.notify("snapshot.created", lambda _: created)
        return snapshot

    def create(
        self,
        name: str,
        image_name: str,
        resources: tuple[int, int, int],
        entrypoint: list[str] | None = None,
    ) -> Snapshot:
        """Validate the source, record the snapshot and start building it."""
        source = parse_source(image_name)
        snapshot = self._insert(
            name,
            image_name,
            resources,
            entrypoint=json.dumps(entrypoint) if entrypoint else None,
        )
        work = self._build_from(snapshot, source)
        if source.kind == "image":
            self._start_build(snapshot, work, state="pulling", failed="error")
        else:
            self._start_build(snapshot, work)
        return snapshot

    def capture(
        self,
        record: SandboxRecord,
        name: str,
        files: AbstractAsyncContextManager[SandboxFiles],
    ) -> Snapshot:
        """Start snapshotting a sandbox's current files, which ``files`` mounts and holds
        still while they are copied (the engine's :meth:`Engine.files_for_capture`)."""
        snapshot = self._insert(
            name,
            f"sandbox:{record.id}",
            (record.cpu, record.memory, record.disk),
            source_sandbox_id=record.id,
        )
        task = asyncio.create_task(self._capture(snapshot, files), name=f"snapshot-{snapshot.id}")
        self._builds[snapshot.id] = task
        task.add_done_callback(lambda _: self._builds.pop(snapshot.id, None))
        return snapshot

    def _start_build(
        self, snapshot: Snapshot, work: Any, state: str = "building", failed: str = "build_failed"
    ) -> None:
        task = asyncio.create_task(
            self._build(snapshot, work, state, failed), name=f"snapshot-{snapshot.id}"
        )
        self._builds[snapshot.id] = task
        task.add_done_callback(lambda _: self._builds.pop(snapshot.id, None))

    async def _build(self, snapshot: Snapshot, work: Any, state: str, failed: str) -> None:
        """Run ``work`` into the snapshot's rootfs: ``state`` meanwhile, ``failed`` if it fails
        (Daytona's pulls end in ``error``, its builds in ``build_failed``)."""
        target = self.rootfs(snapshot)
        log_file = self.log_path(snapshot.id)
        try:
            self._set_state(snapshot, state)
            self._log(log_file, f"building snapshot {snapshot.name} from {snapshot.image_name}")
            target.mkdir(parents=True, exist_ok=True)
            await work
            os.chmod(target, 0o755)  # noqa: S103 -- the root directory sandboxes see
            await asyncio.to_thread(_own_home, target, self.owner_uid)
            size = await asyncio.to_thread(tree_size, target)
            self._log(log_file, f"snapshot {snapshot.name} is active ({size / 2**30:.3f} GiB)")
            self._set_state(snapshot, "active", size=round(size / 2**30, 6))
        except asyncio.CancelledError:
            await asyncio.to_thread(shutil.rmtree, target, True)
            raise
        except (OSError, BuildError, ApiError, oci.PullError) as error:
            reason = str(error) or type(error).__name__
            self._log(log_file, f"build failed: {reason}")
            await asyncio.to_thread(shutil.rmtree, target, True)
            self._set_state(snapshot, failed, error_reason=reason)
        except Exception as error:  # a bug must still end the build, not leave it pending
            log.exception("snapshot build %s failed", snapshot.id)
            await asyncio.to_thread(shutil.rmtree, target, True)
            self._set_state(snapshot, failed, error_reason=f"internal error: {error}")

    def _log(self, path: Path, line: str) -> None:
        with open(path, "a") as handle:
            handle.write(f"{iso(now())} {line}\n")

    async def _run_logged(
        self, snapshot: Snapshot, argv: list[str], cwd: Path | None = None, shown: str = ""
    ) -> None:
        self._log(self.log_path(snapshot.id), "$ " + (shown or " ".join(argv)))
        with open(self.log_path(snapshot.id), "ab") as output:  # noqa: ASYNC230 -- local, small
            process = await asyncio.create_subprocess_exec(
                *tied_to_engine(argv),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                cwd=cwd,
            )
            try:
                code = await process.wait()
            except asyncio.CancelledError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
                raise
        if code != 0:
            raise BuildError(f"{argv[0]} exited with status {code}")

    async def _build_from(self, snapshot: Snapshot, source: Source) -> None:
        target = self.rootfs(snapshot)
        if source.kind == "dir":
            await self._run_logged(snapshot, ["cp", "-a", "--", f"{source.value}/.", str(target)])
        elif source.kind == "tar":
            await self._run_logged(
                snapshot, ["tar", "-x", "--numeric-owner", "-f", source.value, "-C", str(target)]
            )
        elif source.kind == "image":
            await self._pull(snapshot, source.value, target)
        else:
            problem = await mirror_reachable(self.mirror)
            if problem is not None:
                raise BuildError(problem)
            if shutil.which("debootstrap") is None:
                raise BuildError("debootstrap is not installed on the engine's machine")
            await self._run_logged(snapshot, debootstrap_command(source.value, target, self.mirror))
            await asyncio.to_thread(add_sandbox_user, target)

    async def _pull(self, snapshot: Snapshot, reference: str, target: Path) -> None:
        """The image's layers as the snapshot's root, its config kept beside it."""
        work = self.directory / snapshot.id / "pull"
        log_file = self.log_path(snapshot.id)
        try:
            # Read at each pull: a bad value fails that pull, saying so, not the engine.
            answer = env_int("SANDBAR_REGISTRY_TIMEOUT", int(oci.REGISTRY_TIMEOUT), minimum=1)
            largest = env_int("SANDBAR_SANDBOX_MAX_DISK", 20, minimum=1)
            limit = env_float("SANDBAR_IMAGE_MAX_SIZE", largest, minimum=0.001) * 2**30
        except ConfigError as error:
            raise BuildError(str(error)) from None
        try:
            root, config = await oci.pull(
                reference, work, lambda line: self._log(log_file, line), answer=answer, limit=limit
            )
            await asyncio.to_thread(_install_root, root, target)
            (self.directory / snapshot.id / "image.json").write_text(config.to_json())
            if snapshot.entrypoint is None and config.entrypoint:
                # Daytona takes an image's entrypoint when the request names none.
                snapshot.entrypoint = json.dumps(config.entrypoint)
                self.db.execute(
                    "UPDATE snapshots SET entrypoint = ? WHERE id = ?",
                    (snapshot.entrypoint, snapshot.id),
                )
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _capture(
        self, snapshot: Snapshot, files: AbstractAsyncContextManager[SandboxFiles]
    ) -> None:
        """Daytona's states for a capture: snapshotting, then active or error. The sandbox
        is held until then, so a client that waits for it (the SDK does) finds the
        snapshot ready."""
        try:
            async with files as sandbox:
                await self._build(snapshot, self._copy_sandbox(snapshot, sandbox), *CAPTURE)
        except ApiError as error:  # the sandbox could not be held: its state moved on
            self._set_state(snapshot, CAPTURE[1], error_reason=error.message)

    async def _copy_sandbox(self, snapshot: Snapshot, sandbox: SandboxFiles) -> None:
        target = self.rootfs(snapshot)
        if sandbox.layer is not None:
            await self._copy_layer(snapshot, sandbox.layer, target)
        else:
            home = target / rootfs.HOME.lstrip("/")
            home.parent.mkdir(parents=True, exist_ok=True)
            await self._run_logged(snapshot, ["cp", "-a", "--", str(sandbox.home), str(home)])

    async def _copy_layer(self, snapshot: Snapshot, layer: RootLayer, target: Path) -> None:
        """A sandbox's root as plain files: its snapshot's linked, what it changed copied.

        Snapshots (and the default image) never change once built, so the new snapshot
        may share their files: capturing a sandbox of the 400 MB default image takes
        hard links and a copy of what the sandbox's layer holds, not a full copy.
        """
        same_fs = os.stat(layer.lower).st_dev == os.stat(target).st_dev
        link = ["cp", "-al"] if same_fs else ["cp", "-a"]
        await self._run_logged(snapshot, [*link, "--", f"{layer.lower}/.", str(target)])
        copies, dirs = await asyncio.to_thread(clear_changes, layer.upper, target)
        for start in range(0, len(copies), COPY_BATCH):
            batch = copies[start : start + COPY_BATCH]
            await self._run_logged(
                snapshot,
                ["cp", "-a", "--parents", "--", *batch, str(target)],
                cwd=layer.merged,
                shown=f"cp -a --parents ({len(batch)} changed paths) {target}",
            )
        await asyncio.to_thread(copy_dir_modes, layer.merged, target, dirs)

    async def delete(self, id_or_name: str) -> Snapshot:
        """Delete a snapshot no sandbox uses (409 otherwise)."""
        snapshot = self.find(id_or_name)
        if snapshot.general:
            raise Forbidden("The default snapshot cannot be deleted")
        users = self.in_use_by(snapshot)
        if users:
            raise Conflict(
                f"Snapshot {snapshot.name} is in use by {len(users)} sandbox(es): "
                + ", ".join(users)
            )
        build = self._builds.get(snapshot.id)
        if build is not None:
            build.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await build
            snapshot = self.find(snapshot.id)
        self._set_state(snapshot, "removing")
        await asyncio.to_thread(shutil.rmtree, self.directory / snapshot.id, True)
        self.db.execute("DELETE FROM snapshots WHERE id = ?", (snapshot.id,))
        removed = self.dto(snapshot)
        self.notify("snapshot.removed", lambda _: removed)
        return snapshot

    def activate(self, id_or_name: str) -> Snapshot:
        """Make an inactive snapshot usable again."""
        snapshot = self.find(id_or_name)
        if snapshot.state != "inactive":
            raise BadRequest(f"Snapshot {snapshot.name} is {snapshot.state}, not inactive")
        self._set_state(snapshot, "pending")
        self._set_state(snapshot, "active")
        return snapshot

    def deactivate(self, id_or_name: str) -> Snapshot:
        """Stop new sandboxes from being made from a snapshot."""
        snapshot = self.find(id_or_name)
        if snapshot.general:
            raise Forbidden("The default snapshot cannot be deactivated")
        if snapshot.state != "active":
            raise BadRequest(f"Snapshot {snapshot.name} is {snapshot.state}, not active")
        self._set_state(snapshot, "inactive")
        return snapshot

    async def close(self) -> None:
        """Cancel builds in progress (they are marked failed on the next start)."""
        for task in list(self._builds.values()):
            task.cancel()
        for task in list(self._builds.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def list(
        self,
        *,
        page: int,
        limit: int,
        name: str | None,
        sort: str,
        descending: bool,
        source_sandbox_id: str | None = None,
    ) -> tuple[list[Snapshot], int]:
        """One page of snapshots and the total that match."""
        where, params = [], []
        if name:
            where.append("name LIKE ? ESCAPE '\\'")
            escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(f"%{escaped}%")
        if source_sandbox_id:
            where.append("source_sandbox_id = ?")
            params.append(source_sandbox_id)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        total = self.db.execute(f"SELECT COUNT(*) FROM snapshots{clause}", params).fetchone()[0]  # noqa: S608
        direction = "DESC" if descending else "ASC"
        rows = self.db.execute(
            f"SELECT * FROM snapshots{clause} ORDER BY {SORTS[sort]} {direction}, id {direction}"  # noqa: S608
            " LIMIT ? OFFSET ?",
            [*params, limit, (page - 1) * limit],
        ).fetchall()
        return [Snapshot.from_row(row) for row in rows], int(total)


class BuildError(RuntimeError):
    """A snapshot build failed for a reason the caller can act on."""


def _install_root(root: Path, target: Path) -> None:
    """Put an unpacked image's root where the snapshot's goes, with the sandbox user."""
    target.rmdir()
    root.rename(target)
    add_sandbox_user(target)


def _own_home(root: Path, uid: int) -> None:
    """Give the sandbox user its home in the snapshot, as an image's user owns theirs."""
    home = root / rootfs.HOME.lstrip("/")
    if uid <= 0 or home.is_symlink() or not home.is_dir():
        return
    for directory, dirs, files in os.walk(home):  # os.walk does not follow symlinks
        for name in (directory, *(os.path.join(directory, n) for n in [*dirs, *files])):
            with contextlib.suppress(OSError):
                os.chown(name, uid, uid, follow_symlinks=False)


def clear_changes(upper: Path, target: Path) -> tuple[list[str], list[str]]:
    """Remove from ``target`` (a copy of the lower layer) what an overlay's upper replaces.

    Returns the relative paths to copy whole from the merged view (files, symlinks, and
    directories that hide the lower's: opaque or redirected), and the plain directories
    whose mode and owner come from it. Nothing under ``upper`` is followed.
    """
    copies: list[str] = []
    dirs: list[str] = []
    for directory, subdirs, files in os.walk(upper):
        base = os.path.relpath(directory, upper)
        descend = []
        for name in subdirs:
            path, rel = os.path.join(directory, name), os.path.normpath(os.path.join(base, name))
            if os.path.islink(path) or _hides_lower(path):
                _remove(target / rel)
                copies.append(rel)
                continue
            if not (target / rel).is_dir() or (target / rel).is_symlink():
                _remove(target / rel)
                (target / rel).mkdir()
            dirs.append(rel)
            descend.append(name)
        subdirs[:] = descend
        for name in files:
            path, rel = os.path.join(directory, name), os.path.normpath(os.path.join(base, name))
            _remove(target / rel)
            info = os.lstat(path)
            if not (stat.S_ISCHR(info.st_mode) and info.st_rdev == 0):  # else a whiteout
                copies.append(rel)
    return copies, dirs


def _hides_lower(path: str) -> bool:
    for name in ("trusted.overlay.opaque", "trusted.overlay.redirect"):
        with contextlib.suppress(OSError):
            os.getxattr(path, name, follow_symlinks=False)
            return True
    return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def copy_dir_modes(merged: Path, target: Path, dirs: list[str]) -> None:
    """Give ``target``'s directories the mode and owner they have in the merged view."""
    for rel in dirs:
        with contextlib.suppress(OSError):
            info = os.lstat(merged / rel)
            os.chown(target / rel, info.st_uid, info.st_gid, follow_symlinks=False)
            os.chmod(target / rel, stat.S_IMODE(info.st_mode))


# -- routes -------------------------------------------------------------------------


def snapshots_of(request: Request) -> Snapshots:
    """The engine's snapshots."""
    snapshots: Snapshots = request.app.state.engine.snapshots
    return snapshots


async def list_snapshots(request: Request) -> Response:
    """GET /snapshots: a page, with name search and sort ({items, total, page, totalPages})."""
    query = Query(
        request.query_params, {"page", "limit", "name", "sort", "order", "sourceSandboxId"}
    )
    page = query.integer("page", 1, minimum=1, maximum=10**6) or 1
    limit = query.integer("limit", 100, minimum=1, maximum=200) or 100
    sort = query.string("sort", "createdAt") or "createdAt"
    if sort not in SORTS:
        raise BadRequest(f"sort must be one of {', '.join(SORTS)}")
    order = (query.string("order", "desc") or "desc").lower()
    if order not in ("asc", "desc"):
        raise BadRequest("order must be asc or desc")
    snapshots = snapshots_of(request)
    items, total = snapshots.list(
        page=page,
        limit=limit,
        name=query.string("name"),
        sort=sort,
        descending=order == "desc",
        source_sandbox_id=query.string("sourceSandboxId"),
    )
    return JSONResponse(
        {
            "items": [snapshots.dto(s) for s in items],
            "total": total,
            "page": page,
            "totalPages": math.ceil(total / limit),
        }
    )


def _resources(body: Body, request: Request) -> tuple[int, int, int]:
    config = request.app.state.engine.config
    if body.integer("gpu", 0, minimum=0):
        raise BadRequest("The embedded engine has no GPUs")
    cpu = body.integer("cpu", config.default_cpu, minimum=1, maximum=config.max_cpu)
    memory = body.integer("memory", config.default_memory, minimum=1, maximum=config.max_memory)
    disk = body.integer("disk", config.default_disk, minimum=1, maximum=config.max_disk)
    assert cpu is not None and memory is not None and disk is not None
    return cpu, memory, disk


async def create_snapshot(request: Request) -> Response:
    """POST /snapshots {name, imageName, ...}: 200 with the SnapshotDto, then it builds."""
    Query(request.query_params, set())
    body = Body(
        await read_json(request),
        {"name", "imageName", "entrypoint", "cpu", "gpu", "gpuType", "memory", "disk",
         "buildInfo", "regionId", "sandboxClass", "skipValidation"},
    )  # fmt: skip
    name = body.string("name", required=True, max_length=255, allow_empty=False)
    if body.raw("buildInfo") not in (None, {}):
        raise BadRequest(
            "Building from a Dockerfile (buildInfo) is not supported by the embedded engine: "
            "build the image elsewhere (docker build, buildah), push it to a registry and "
            "create the snapshot with its imageName"
        )
    if body.raw("gpuType") not in (None, [], ""):
        raise BadRequest("The embedded engine has no GPUs")
    image_name = body.string("imageName", required=True, max_length=4096, allow_empty=False)
    entrypoint = body.string_list("entrypoint", max_items=64) or None
    region = body.string("regionId")
    if region not in (None, "", usage.REGION):
        raise BadRequest(f"Region {region} not found")
    if body.string("sandboxClass") not in (None, "container"):
        raise BadRequest("The embedded engine only runs the container class")
    body.boolean("skipValidation")
    resources = _resources(body, request)
    assert name is not None and image_name is not None
    engine = request.app.state.engine
    if parse_source(image_name).kind == "image" and not engine.host.has(prereqs.IMAGES):
        raise BadRequest(f"This engine cannot pull images: {engine.host.why_not(prereqs.IMAGES)}")
    usage.check_snapshot(engine.store.db, engine.quotas)
    snapshots = snapshots_of(request)
    return JSONResponse(snapshots.dto(snapshots.create(name, image_name, resources, entrypoint)))


async def get_snapshot(request: Request) -> Response:
    """GET /snapshots/{id}: by id or name."""
    Query(request.query_params, set())
    snapshots = snapshots_of(request)
    return JSONResponse(snapshots.dto(snapshots.find(request.path_params["id"])))


async def delete_snapshot(request: Request) -> Response:
    """DELETE /snapshots/{id}: 409 while a sandbox uses it."""
    Query(request.query_params, set())
    await snapshots_of(request).delete(request.path_params["id"])
    return Response(status_code=200)


async def activate_snapshot(request: Request) -> Response:
    """POST /snapshots/{id}/activate (only from inactive)."""
    Query(request.query_params, set())
    snapshots = snapshots_of(request)
    return JSONResponse(snapshots.dto(snapshots.activate(request.path_params["id"])))


async def deactivate_snapshot(request: Request) -> Response:
    """POST /snapshots/{id}/deactivate."""
    Query(request.query_params, set())
    snapshots = snapshots_of(request)
    return JSONResponse(snapshots.dto(snapshots.deactivate(request.path_params["id"])))


async def build_logs_url(request: Request) -> Response:
    """GET /snapshots/{id}/build-logs-url → {url}."""
    Query(request.query_params, set())
    snapshot = snapshots_of(request).find(request.path_params["id"])
    base = f"{request.url.scheme}://{request.url.netloc}/api"
    return JSONResponse({"url": f"{base}/snapshots/{snapshot.id}/build-logs"})


async def build_logs(request: Request) -> Response:
    """GET /snapshots/{id}/build-logs[?follow=true]: plain text, chunked while building."""
    follow = bool(Query(request.query_params, {"follow"}).boolean("follow", False))
    snapshots = snapshots_of(request)
    snapshot = snapshots.find(request.path_params["id"])
    path = snapshots.log_path(snapshot.id)

    async def stream() -> AsyncIterator[bytes]:
        try:
            handle = open(path, "rb")  # noqa: SIM115, ASYNC230 -- closed in finally
        except FileNotFoundError:
            return
        try:
            while True:
                chunk = handle.read(64 * 1024)
                if chunk:
                    yield chunk
                    continue
                if not follow:
                    return
                current = snapshots.get(snapshot.id)
                if current is None or current.state in TERMINAL:
                    rest = handle.read()
                    if rest:
                        yield rest
                    return
                await asyncio.sleep(FOLLOW_POLL)
        finally:
            handle.close()

    return StreamingResponse(stream(), media_type="application/octet-stream")


def routes() -> list[BaseRoute]:
    """Snapshot routes, mounted at /api."""
    snapshot = "/snapshots/{id}"
    return [
        Route("/snapshots", list_snapshots, methods=["GET"]),
        Route("/snapshots", create_snapshot, methods=["POST"]),
        Route(snapshot, get_snapshot, methods=["GET"]),
        Route(snapshot, delete_snapshot, methods=["DELETE"]),
        Route(f"{snapshot}/activate", activate_snapshot, methods=["POST"]),
        Route(f"{snapshot}/deactivate", deactivate_snapshot, methods=["POST"]),
        Route(f"{snapshot}/build-logs-url", build_logs_url, methods=["GET"]),
        Route(f"{snapshot}/build-logs", build_logs, methods=["GET"]),
    ]
