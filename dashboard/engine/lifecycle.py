"""The sandbox state machine: create, start, stop, archive, recover, delete, and the timers.

State names are Daytona's. Every transition is written to the store before and after
the runtime work, so a crash mid-way leaves a transitional state that the next engine
start finishes (see :meth:`Engine.reconcile`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from dashboard.engine import prereqs, usage
from dashboard.engine.audit import AuditLog
from dashboard.engine.config import EngineConfig
from dashboard.engine.errors import BadRequest, Conflict, NotFound
from dashboard.engine.fork import Forks
from dashboard.engine.image import DefaultImage
from dashboard.engine.runtime import Runtime, RuntimeError_, SandboxFiles, SandboxSpec, rootfs
from dashboard.engine.snapshots import Snapshots
from dashboard.engine.states import DESIRED
from dashboard.engine.states import SandboxDesiredState as D
from dashboard.engine.states import SandboxState as S
from dashboard.engine.store import SandboxRecord, Store, iso, new_id, now, parse_iso
from dashboard.engine.volumes import Volumes

log = logging.getLogger("sandbar.engine")

LANGUAGES = ("python", "typescript", "javascript")
LANGUAGE_LABEL = "code-toolbox-language"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
DEFAULT_AUTO_STOP = 15  # minutes, as Daytona
DEFAULT_AUTO_ARCHIVE = 7 * 24 * 60
MAX_AUTO_ARCHIVE = 30 * 24 * 60  # autoArchiveInterval 0 means "the maximum"
MAX_INTERVAL = 10 * 365 * 24 * 60
ACTIVITY_RESOLUTION = timedelta(seconds=1)
KEEP_DESTROYED = timedelta(hours=1)
FORK_INTERRUPTED = (
    "the fork was interrupted by an engine restart before its disk was copied; the "
    "partial copy was removed: delete this sandbox and fork again"
)


@dataclass
class CreateRequest:
    """A validated ``POST /sandbox`` body."""

    name: str | None = None
    snapshot: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    public: bool = False
    network_block_all: bool = False
    network_allow_list: str = ""  # canonical comma-separated IPv4 CIDRs ("": none)
    target: str = "local"
    cpu: int | None = None
    memory: int | None = None
    disk: int | None = None
    auto_stop_interval: int = DEFAULT_AUTO_STOP
    auto_archive_interval: int = DEFAULT_AUTO_ARCHIVE
    auto_delete_interval: int = -1
    volumes: object = None  # the request's raw ``volumes``, checked by Volumes.parse_mounts


def allow_list_of(record: SandboxRecord) -> tuple[str, ...]:
    """A sandbox's networkAllowList as the runtime takes it."""
    return tuple(part for part in record.network_allow_list.split(",") if part)


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    """Refuse a code-toolbox-language the SDK would choke on."""
    language = labels.get(LANGUAGE_LABEL)
    if language is not None and language not in LANGUAGES:
        raise BadRequest(f"label {LANGUAGE_LABEL} must be one of {', '.join(LANGUAGES)}")
    return labels


class Engine:
    """Owns the store and the runtime and applies every state change."""

    def __init__(self, config: EngineConfig, host: prereqs.Report | None = None) -> None:
        self.config = config
        # What this host can do (dashboard/engine/prereqs.py); a feature it lacks is
        # refused with a 400 naming the cause.
        self.host = host or prereqs.run_checks(
            first_uid=config.sandbox_uid, uid_count=config.sandbox_uid_count
        )
        # The database holds sandboxes' environment variables (often secrets) and the
        # directory the disk images: nobody but root needs to look inside.
        config.engine_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(config.engine_dir, 0o700)
        self.store = Store(config.engine_dir / "engine.sqlite3")
        # Default sandboxes run on the engine's own Debian image, never the host's /usr.
        self.default_image = DefaultImage.for_data_dir(config.data_dir)
        self.runtime = Runtime(config, default_rootfs=str(self.default_image.rootfs))
        self.runtime.network = self.runtime.network and self.host.has(prereqs.NETWORK)
        self.runtime.proc_limits = self.host.has(prereqs.PROC_LIMITS)
        self.runtime.recorded_uids = self.store.uids
        self.organization_id = self.store.meta("organization_id", new_id())
        self._locks: dict[str, asyncio.Lock] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._last_touch: dict[str, str] = {}
        self._busy: dict[str, int] = {}
        # Change observers (the Socket.IO stream): observer(event, *details).
        self.observers: list[Callable[..., None]] = []
        self.quotas = usage.load_quotas()
        self.audit = AuditLog(self.store.db, self.organization_id)
        self.forks = Forks(self.store.db)
        self.volumes = Volumes(
            self.store.db,
            config.engine_dir / "volumes",
            config.sandbox_uid,
            self.organization_id,
            self._notify_payload,
        )
        self.snapshots = Snapshots(
            self.store.db,
            config.engine_dir / "snapshots",
            self.organization_id,
            self._notify_payload,
            defaults=(config.default_cpu, config.default_memory, config.default_disk),
            default_image=self.default_image,
            owner_uid=config.sandbox_uid,
        )

    def notify(self, event: str, *details: Any) -> None:
        """Tell every observer about a change (an observer's failure is only logged)."""
        for observer in list(self.observers):
            try:
                observer(event, *details)
            except Exception:
                log.exception("event observer failed on %s", event)

    def _notify_payload(self, event: str, build: Callable[[str], Any]) -> None:
        self.notify(event, build)

    # -- engine lifetime -------------------------------------------------------

    async def startup(self) -> None:
        """Prepare the host, bring sandboxes back to their recorded state, start the timers."""
        if self.host.fatal:
            raise RuntimeError_(
                "the host is not ready for the engine:\n"
                + "\n".join(check.line() for check in self.host.fatal)
            )
        for feature in prereqs.FEATURES:
            if not self.host.has(feature):
                log.warning(
                    "%s are off on this host: %s", prereqs.FEATURES[feature],
                    self.host.why_not(feature),
                )  # fmt: skip
        self.runtime.setup()
        await self.reconcile()
        self.runtime.fill_pool()
        self._ticker = asyncio.create_task(self._tick_forever(), name="engine-ticker")

    async def shutdown(self) -> None:
        """Stop the timers and every sandbox (they are restarted on the next start)."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for record in self.store.live():
            if self.runtime.is_running(record.id):
                self.store.add_event(record.id, "engine-stopped", "stopped with the engine")
        await self.snapshots.close()
        await self.runtime.shutdown()
        self.store.close()

    async def reconcile(self) -> None:
        """Finish interrupted transitions and restart sandboxes that should be running."""
        for record in self.store.live():
            if record.uid == 0:  # created by an engine from before per-sandbox uids
                record.uid = self.runtime.allocate_uid()
                self.store.save(record)
        semaphore = asyncio.Semaphore(4)

        async def one(record: SandboxRecord) -> None:
            async with semaphore:
                await self._reconcile_one(record)

        await asyncio.gather(*(one(record) for record in self.store.live()))

    async def _reconcile_one(self, record: SandboxRecord) -> None:
        self.runtime.release_stale(record.id)
        if (
            record.state == S.CREATING
            and self.forks.is_fork(record.id)
            and not self.runtime.disk(record.id).image.exists()
        ):
            # Its clone never finished (Runtime.clone names the image only once whole);
            # a fresh empty disk would look like a fork that worked: what the copy left
            # goes, and the sandbox says why. A fork cut short while booting has its
            # whole clone and is restarted below, as an interrupted create is.
            await self.runtime.destroy(record.id)
            self._set_error(record, FORK_INTERRUPTED, recoverable=False)
            return
        if record.state in (S.SNAPSHOTTING, S.FORKING):
            # A capture or fork leaves desiredState alone: the sandbox goes back where it was.
            record.state = record.desired_state
            self.store.save(record)
        state = record.state
        if state == S.DESTROYING:
            await self.runtime.destroy(record.id)
            self._set_state(record, S.DESTROYED)
        elif state == S.STOPPING:
            self._set_state(record, S.STOPPED, stopped_at=iso(now()))
        elif state == S.ARCHIVING:
            self._set_state(record, S.ARCHIVED)
        elif state in (S.CREATING, S.STARTING, S.RESTORING, S.STARTED, S.RESIZING):
            if state == S.CREATING and not self.runtime.disk(record.id).image.exists():
                await self.runtime.create(self._spec(record))
            try:
                await self.runtime.start(self._spec(record))
            except RuntimeError_ as error:
                self._set_error(record, f"restart after engine restart failed: {error}")
                return
            self._set_state(record, S.STARTED, last_activity_at=iso(now()))
            self.store.add_event(record.id, "restarted", "restarted after an engine restart")

    # -- lookups ---------------------------------------------------------------

    def find(self, id_or_name: str) -> SandboxRecord:
        """A live sandbox by id or name, or 404."""
        record = self.store.get(id_or_name)
        if record is None:
            raise NotFound(f"Sandbox with ID or name {id_or_name} not found")
        return record

    def find_started(self, id_or_name: str) -> SandboxRecord:
        """A sandbox whose toolbox can be used right now."""
        record = self.find(id_or_name)
        if record.state != S.STARTED or not self.runtime.is_running(record.id):
            raise Conflict(f"Sandbox {record.id} is not started (state: {record.state})")
        return record

    def touch(self, sandbox_id: str) -> None:
        """Record toolbox activity, at most once a second per sandbox."""
        moment = now()
        previous = self._last_touch.get(sandbox_id)
        stamp = iso(moment)
        if previous is not None and moment - parse_iso(previous) < ACTIVITY_RESOLUTION:
            return
        self._last_touch[sandbox_id] = stamp
        self.store.touch(sandbox_id, stamp)

    @contextlib.contextmanager
    def busy(self, sandbox_id: str) -> Iterator[None]:
        """Mark a long toolbox call (a command) as activity from its start to its end.

        Auto-stop leaves a sandbox alone while one runs, however long it takes.
        """
        self._busy[sandbox_id] = self._busy.get(sandbox_id, 0) + 1
        self.touch(sandbox_id)
        try:
            yield
        finally:
            self._busy[sandbox_id] -= 1
            if not self._busy[sandbox_id]:
                del self._busy[sandbox_id]
            self._last_touch.pop(sandbox_id, None)
            self.touch(sandbox_id)

    # -- state changes ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _transition(
        self, record: SandboxRecord, *, wait: bool = False
    ) -> AsyncIterator[None]:
        """Serialize state changes of one sandbox; a second one at once is a 409."""
        lock = self._locks.setdefault(record.id, asyncio.Lock())
        if lock.locked() and not wait:
            raise Conflict("Sandbox state change in progress")
        async with lock:
            yield

    def _spec(self, record: SandboxRecord) -> SandboxSpec:
        return SandboxSpec(
            id=record.id,
            cpu=record.cpu,
            memory=record.memory,
            disk=record.disk,
            network_block_all=record.network_block_all,
            mounts=self.volumes.runtime_mounts(record.id),
            rootfs=self.snapshots.rootfs_for(record.snapshot),
            uid=record.uid,
            network_allow_list=allow_list_of(record),
        )

    def _set_state(self, record: SandboxRecord, state: str, **changes: object) -> None:
        old, old_desired = record.state, record.desired_state
        record.state = state
        record.desired_state = DESIRED.get(state, record.desired_state)
        if state != S.ERROR:
            record.error_reason = None
            record.recoverable = False
        for key, value in changes.items():
            setattr(record, key, value)
        record.updated_at = iso(now())
        self.store.save(record)
        if old_desired != record.desired_state:
            self.notify(
                "sandbox.desired-state.updated", replace(record), old_desired, record.desired_state
            )
        if old != state:
            self.store.add_event(record.id, "state", f"{old} -> {state}")
            self.notify("sandbox.state.updated", replace(record), old, state)

    def _set_error(self, record: SandboxRecord, reason: str, *, recoverable: bool = True) -> None:
        log.warning("sandbox %s failed: %s", record.id, reason)
        self._set_state(record, S.ERROR, error_reason=reason, recoverable=recoverable)

    def _check_quota(
        self,
        record: SandboxRecord,
        *,
        cpu: int | None = None,
        memory: int | None = None,
        disk: int | None = None,
    ) -> None:
        """Refuse (403) running ``record`` with these resources past the organization quota."""
        usage.check_sandbox(
            self.store.db,
            self.quotas,
            cpu=record.cpu if cpu is None else cpu,
            memory=record.memory if memory is None else memory,
            disk=record.disk if disk is None else disk,
            exclude=record.id,
        )

    def _check_network(self, block_all: bool) -> None:
        """Refuse (400) a sandbox with a network on a host that cannot give it one."""
        if not block_all and not self.runtime.network:
            raise BadRequest(
                "this engine cannot give sandboxes a network: "
                f"{self.host.why_not(prereqs.NETWORK) or 'slirp4netns is missing'}; "
                "set networkBlockAll to create one without a network"
            )

    async def create(self, request: CreateRequest) -> SandboxRecord:
        """Create and start a sandbox; runtime failures end in state ``error``."""
        config = self.config
        self._check_network(request.network_block_all)
        source, _ = self.snapshots.for_sandbox(request.snapshot or rootfs.DEFAULT_SNAPSHOT)
        snapshot = source.name
        mounts = self.volumes.parse_mounts(request.volumes)
        sandbox_id = new_id()
        if request.name is not None and not NAME_PATTERN.match(request.name):
            raise BadRequest(
                "name must be 1-63 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        stamp = iso(now())
        record = SandboxRecord(
            id=sandbox_id,
            name=request.name or sandbox_id,
            snapshot=snapshot,
            user=rootfs.SANDBOX_USER,
            env={**self.snapshots.sandbox_env(source), **request.env},  # the image's first
            labels=check_labels(request.labels),
            public=request.public,
            network_block_all=request.network_block_all,
            network_allow_list=request.network_allow_list,
            target=request.target,
            cpu=request.cpu or source.cpu or config.default_cpu,
            gpu=0,
            memory=request.memory or source.mem or config.default_memory,
            disk=request.disk or source.disk or config.default_disk,
            state=S.CREATING,
            desired_state=D.STARTED,
            auto_stop_interval=request.auto_stop_interval,
            auto_archive_interval=request.auto_archive_interval,
            auto_delete_interval=request.auto_delete_interval,
            created_at=stamp,
            updated_at=stamp,
            last_activity_at=stamp,
        )
        # Checked and inserted with no await between: concurrent creates cannot both pass.
        usage.check_sandbox(
            self.store.db, self.quotas, cpu=record.cpu, memory=record.memory, disk=record.disk
        )
        try:
            self.store.insert(record)
        except sqlite3.IntegrityError:
            raise Conflict(f"Sandbox with name {record.name} already exists") from None
        self.volumes.attach(record.id, mounts)
        self.snapshots.mark_used(source)
        self.store.add_event(record.id, "created", "")
        self.notify("sandbox.created", replace(record))
        async with self._transition(record):
            try:
                # A default sandbox comes ready from the warm pool when there is one;
                # its uid becomes this sandbox's. Otherwise it gets one of its own.
                uid = await self.runtime.claim(self._spec(record))
                record.uid = uid or self.runtime.allocate_uid()
                self.store.save(record)
                if uid is None:
                    spec = self._spec(record)
                    await self.runtime.create(spec)
                    self._set_state(record, S.STARTING)
                    await self.runtime.start(spec)
            except (RuntimeError_, OSError) as error:
                # Daytona keeps a sandbox whose create failed, in ``error``; here it
                # holds nothing more (no disk, mount, cgroup or network), and it cannot
                # be recovered: deleting it only forgets the record.
                await self.runtime.destroy(record.id)
                self._set_error(record, f"create failed: {error}", recoverable=False)
                return record
            self._set_state(record, S.STARTED, last_activity_at=iso(now()))
        return record

    async def start(self, id_or_name: str) -> SandboxRecord:
        """Start a stopped or archived sandbox."""
        record = self.find(id_or_name)
        async with self._transition(record):
            record = self.find(record.id)
            if record.state == S.STARTED:
                raise BadRequest("Sandbox is already started")
            if record.state == S.ERROR:
                raise BadRequest("Sandbox is in an error state; recover it instead")
            if record.state not in (S.STOPPED, S.ARCHIVED):
                raise Conflict(f"Sandbox cannot be started while {record.state}")
            self._check_quota(record)
            await self._start(record, S.RESTORING if record.state == S.ARCHIVED else S.STARTING)
        return record

    async def _start(self, record: SandboxRecord, via: str) -> None:
        self._check_network(record.network_block_all)
        self._set_state(record, via)
        try:
            await self.runtime.start(self._spec(record))
        except (RuntimeError_, OSError) as error:
            self._set_error(record, str(error))
            return
        self._set_state(record, S.STARTED, last_activity_at=iso(now()), stopped_at=None)

    async def stop(
        self, id_or_name: str, *, force: bool = False, reason: str = ""
    ) -> SandboxRecord:
        """Stop a started sandbox (SIGTERM then SIGKILL, or SIGKILL at once with force)."""
        record = self.find(id_or_name)
        async with self._transition(record):
            record = self.find(record.id)
            if record.state in (S.STOPPED, S.ARCHIVED):
                raise BadRequest(f"Sandbox is already {record.state}")
            if record.state not in (S.STARTED, S.ERROR):
                raise Conflict(f"Sandbox cannot be stopped while {record.state}")
            self._set_state(record, S.STOPPING)
            await self.runtime.stop(record.id, force=force)
            self._set_state(record, S.STOPPED, stopped_at=iso(now()))
            if reason:
                self.store.add_event(record.id, reason, "")
        if record.auto_delete_interval == 0:
            await self.delete(record.id, reason="auto-delete")
        return record

    async def archive(self, id_or_name: str, *, reason: str = "") -> SandboxRecord:
        """Archive a stopped sandbox (its disk stays on this machine)."""
        record = self.find(id_or_name)
        async with self._transition(record):
            record = self.find(record.id)
            if record.state == S.ARCHIVED:
                raise BadRequest("Sandbox is already archived")
            if record.state != S.STOPPED:
                raise BadRequest(
                    f"Sandbox must be stopped before archiving (state: {record.state})"
                )
            self._set_state(record, S.ARCHIVING)
            self._set_state(record, S.ARCHIVED)
            if reason:
                self.store.add_event(record.id, reason, "")
        return record

    async def recover(self, id_or_name: str) -> SandboxRecord:
        """Start a sandbox again after a recoverable error."""
        record = self.find(id_or_name)
        async with self._transition(record):
            record = self.find(record.id)
            if record.state != S.ERROR or not record.recoverable:
                raise BadRequest("Only a sandbox in a recoverable error state can be recovered")
            self._check_quota(record)
            await self.runtime.stop(record.id, force=True)
            await self._start(record, S.STARTING)
        return record

    async def delete(self, id_or_name: str, *, reason: str = "") -> SandboxRecord:
        """Destroy a sandbox and its disk (waits for a transition in progress)."""
        record = self.find(id_or_name)
        async with self._transition(record, wait=True):
            record = self.find(record.id)
            self._set_state(record, S.DESTROYING)
            await self.runtime.destroy(record.id)
            self._set_state(record, S.DESTROYED)
            if reason:
                self.store.add_event(record.id, reason, "")
        self._locks.pop(record.id, None)
        self._last_touch.pop(record.id, None)
        return record

    def set_labels(self, id_or_name: str, labels: dict[str, str]) -> SandboxRecord:
        """Replace all labels."""
        record = self.find(id_or_name)
        record.labels = check_labels(labels)
        record.updated_at = iso(now())
        self.store.save(record)
        return record

    def set_setting(self, id_or_name: str, **changes: object) -> SandboxRecord:
        """Change intervals or the public flag."""
        record = self.find(id_or_name)
        for key, value in changes.items():
            setattr(record, key, value)
        record.updated_at = iso(now())
        self.store.save(record)
        return record

    async def set_network(
        self, id_or_name: str, *, block_all: bool, allow_list: str
    ) -> SandboxRecord:
        """Change the egress settings; a running sandbox gets them at once."""
        self._check_network(block_all)
        record = self.find(id_or_name)
        async with self._transition(record):
            record = self.find(record.id)
            try:
                await self.runtime.set_network(
                    record.id,
                    block_all=block_all,
                    allow_list=tuple(part for part in allow_list.split(",") if part),
                )
            except (RuntimeError_, OSError) as error:
                raise BadRequest(f"the network settings could not be applied: {error}") from error
            self.set_setting(record.id, network_block_all=block_all, network_allow_list=allow_list)
            self.store.add_event(
                record.id, "network", f"blockAll={block_all} allowList={allow_list or '-'}"
            )
        return self.find(record.id)

    async def resize(
        self, id_or_name: str, *, cpu: int | None, memory: int | None, disk: int | None
    ) -> SandboxRecord:
        """Change resources: CPU and memory live or stopped; disk only grows, only stopped."""
        record = self.find(id_or_name)
        async with self._transition(record):
            record = self.find(record.id)
            if record.state not in (S.STARTED, S.STOPPED):
                raise BadRequest(
                    f"Sandbox must be started or stopped to resize (state: {record.state})"
                )
            if disk is not None and disk != record.disk:
                if disk < record.disk:
                    raise BadRequest("disk can only grow")
                if record.state != S.STOPPED:
                    raise BadRequest("disk can only be resized while the sandbox is stopped")
            previous = record.state
            new_cpu, new_memory = cpu or record.cpu, memory or record.memory
            new_disk = disk or record.disk
            if previous == S.STARTED:
                self._check_quota(record, cpu=new_cpu, memory=new_memory, disk=new_disk)
            else:  # a stopped sandbox uses disk only
                self._check_quota(record, cpu=0, memory=0, disk=new_disk)
            self._set_state(record, S.RESIZING)
            try:
                spec = SandboxSpec(
                    record.id, new_cpu, new_memory, new_disk, record.network_block_all
                )
                await self.runtime.resize(spec, grow_disk=new_disk > record.disk)
            except (OSError, RuntimeError_) as error:
                self._set_state(record, previous)
                raise BadRequest(f"resize failed: {error}") from error
            self._set_state(record, previous, cpu=new_cpu, memory=new_memory, disk=new_disk)
            record.desired_state = previous
            self.store.save(record)
        return record

    async def fork(self, id_or_name: str, name: str | None) -> SandboxRecord:
        """Make a started copy of a started sandbox's files (Daytona's fork).

        The parent is ``forking`` only while its disk is cloned (copy-on-write, see
        :meth:`Runtime.clone`), then ``started`` again, its processes untouched and free
        for other actions. The fork, held by its own lock from the start, then boots on
        its own: ``creating`` -> ``started``, or ``error`` with the reason, with the
        parent's settings and volumes. The answer comes once it has booted, as a
        create's does.
        """
        if name is not None and not NAME_PATTERN.match(name):
            raise BadRequest(
                "name must be 1-63 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        sandbox_id = new_id()
        async with self._locks.setdefault(sandbox_id, asyncio.Lock()):
            try:
                record = await self._fork_clone(id_or_name, name, sandbox_id)
            except BaseException:
                self._locks.pop(sandbox_id, None)
                raise
            try:
                await self.runtime.start(self._spec(record))
            except (RuntimeError_, OSError) as error:
                self._set_error(record, f"the fork did not start: {error}")
                return record
            self._set_state(record, S.STARTED, last_activity_at=iso(now()))
        return record

    async def _fork_clone(
        self, id_or_name: str, name: str | None, sandbox_id: str
    ) -> SandboxRecord:
        """Record the fork and clone the parent's disk for it, the parent ``forking``
        meanwhile (a failure forgets the fork and is a 400)."""
        parent = self.find(id_or_name)
        async with self._transition(parent):
            parent = self.find(parent.id)
            if parent.state != S.STARTED or not self.runtime.is_running(parent.id):
                raise BadRequest("Sandbox must be in started state to fork")
            self._check_network(parent.network_block_all)
            record = self._fork_record(parent, name, sandbox_id)
            usage.check_sandbox(
                self.store.db, self.quotas, cpu=record.cpu, memory=record.memory, disk=record.disk
            )
            try:
                self.store.insert(record)
            except sqlite3.IntegrityError:
                raise Conflict("Sandbox with this name already exists") from None
            self.forks.add(parent.id, record.id)
            self.volumes.attach(record.id, self.volumes.mounts(parent.id))
            self.store.add_event(record.id, "created", f"forked from {parent.id}")
            self.notify("sandbox.created", replace(record))
            self._set_state(parent, S.FORKING)
            try:
                record.uid = self.runtime.allocate_uid()
                self.store.save(record)
                shared = await self.runtime.clone(parent.id, self._spec(record))
            except (RuntimeError_, OSError) as error:
                # As Daytona: the parent goes back, the fork is gone.
                await self.runtime.destroy(record.id)
                self._set_state(record, S.DESTROYED, error_reason=None)
                raise BadRequest(f"Fork failed: {error}") from error
            finally:
                self._set_state(parent, S.STARTED)
            copy = "copy-on-write" if shared else "a full copy (no disk pool)"
            self.store.add_event(parent.id, "forked", f"{record.id} ({copy})")
        return record

    def _fork_record(
        self, parent: SandboxRecord, name: str | None, sandbox_id: str
    ) -> SandboxRecord:
        stamp = iso(now())
        return replace(
            parent,
            id=sandbox_id,
            name=name or sandbox_id,
            env=dict(parent.env),
            labels=dict(parent.labels),
            state=S.CREATING,
            desired_state=D.STARTED,
            error_reason=None,
            recoverable=False,
            created_at=stamp,
            updated_at=stamp,
            last_activity_at=stamp,
            stopped_at=None,
            uid=0,
            extra={},
        )

    async def snapshot(self, id_or_name: str, name: str) -> SandboxRecord:
        """Start capturing a started or stopped sandbox's files as a new snapshot ``name``.

        Answers at once with the sandbox in ``snapshotting``; the copy runs in the
        background (:meth:`Snapshots.capture`), after which the sandbox is back in the
        state it had.
        """
        record = self.find(id_or_name)
        if record.state not in (S.STARTED, S.STOPPED):
            raise BadRequest("Sandbox must be in started or stopped state to create a snapshot")
        lock = self._locks.get(record.id)
        if lock is not None and lock.locked():
            raise Conflict("Sandbox state change in progress")
        usage.check_snapshot(self.store.db, self.quotas)
        self.snapshots.capture(record, name, self.files_for_capture(record.id))
        await asyncio.sleep(0)  # let the capture take the sandbox's lock first
        return replace(self.find(record.id))

    @contextlib.asynccontextmanager
    async def files_for_capture(self, sandbox_id: str) -> AsyncIterator[SandboxFiles]:
        """Hold a started or stopped sandbox in ``snapshotting``, its files mounted.

        Waits for a state change in progress. On leaving, the sandbox is back in the
        state (and desired state) it had, and a stopped one's files are unmounted.
        """
        record = self.find(sandbox_id)
        async with self._transition(record, wait=True):
            record = self.find(sandbox_id)
            previous = record.state
            if previous not in (S.STARTED, S.STOPPED):
                raise Conflict(f"the sandbox is {previous}; it must be started or stopped")
            self._set_state(record, S.SNAPSHOTTING)
            try:
                async with self.runtime.files(self._spec(record)) as files:
                    yield files
            finally:
                self._set_state(record, previous)
                record.desired_state = previous
                self.store.save(record)

    # -- timers ----------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_seconds)
            try:
                await self.tick()
            except Exception:  # a timer failure must not stop future ticks
                log.exception("engine tick failed")

    async def tick(self) -> None:
        """Apply auto-stop, auto-archive and auto-delete; notice sandboxes that died."""
        self.runtime.sweep()
        moment = now()
        for record in self.store.live():
            lock = self._locks.get(record.id)
            if lock is not None and lock.locked():
                continue
            try:
                await self._tick_one(record, moment)
            except (BadRequest, Conflict, NotFound):
                continue  # the state moved on between the query and the action
        self.store.purge_destroyed(KEEP_DESTROYED)

    async def _tick_one(self, record: SandboxRecord, moment: datetime) -> None:
        if record.state == S.STARTED:
            if not self.runtime.is_running(record.id):
                # Under the sandbox's lock: a stop may be killing it right now, on purpose.
                async with self._transition(record):
                    record = self.find(record.id)
                    if record.state == S.STARTED and not self.runtime.is_running(record.id):
                        await self.runtime.stop(record.id, force=True)
                        self._set_error(record, "the sandbox's processes exited unexpectedly")
                return
            idle = moment - parse_iso(record.last_activity_at)
            if record.id in self._busy:
                return
            if record.auto_stop_interval > 0 and idle >= timedelta(
                minutes=record.auto_stop_interval
            ):
                await self.stop(record.id, reason="auto-stop")
            return
        if record.state not in (S.STOPPED, S.ARCHIVED) or record.stopped_at is None:
            return
        stopped_for = moment - parse_iso(record.stopped_at)
        delete_after = record.auto_delete_interval
        if delete_after >= 0 and stopped_for >= timedelta(minutes=delete_after):
            await self.delete(record.id, reason="auto-delete")
            return
        archive_after = record.auto_archive_interval or MAX_AUTO_ARCHIVE
        if record.state == S.STOPPED and stopped_for >= timedelta(minutes=archive_after):
            await self.archive(record.id, reason="auto-archive")
