"""The runtime: sandboxes' lifetime on this host, and the warm pool.

Starting a sandbox mounts its disk and root, creates its cgroups and has the
:class:`Launcher` start its bubblewrap; processes then enter it through the
:class:`Entrance`. Two things keep latency low: a small pool of started default
sandboxes that create hands out (:meth:`Runtime.claim`), and in each sandbox a spare
process, already inside its namespaces, that becomes the next plain command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from dashboard.engine.config import EngineConfig
from dashboard.engine.runtime import ids, rootfs
from dashboard.engine.runtime.cgroups import CgroupManager
from dashboard.engine.runtime.commands import kill
from dashboard.engine.runtime.disk import (
    MNT_DETACH,
    Disk,
    DiskError,
    DiskPool,
    clone_while_frozen,
    libc,
)
from dashboard.engine.runtime.egress import Egress, EgressError, EgressPolicy, parse_cidrs
from dashboard.engine.runtime.enter import SPARE_DELAY, Entrance
from dashboard.engine.runtime.ids import UidRange, UidRangeFull
from dashboard.engine.runtime.launch import Launcher
from dashboard.engine.runtime.layers import RootLayer, has_own_etc, is_full_root
from dashboard.engine.runtime.mounts import unbind_volumes
from dashboard.engine.runtime.network import UserNetwork
from dashboard.engine.runtime.procfs import Lxcfs
from dashboard.engine.runtime.sandbox import (
    NotRunning,
    RunningSandbox,
    RuntimeError_,
    SandboxFiles,
    SandboxSpec,
)
from dashboard.engine.runtime.sandbox_process import SandboxProcess
from dashboard.engine.runtime.spawn import Spawner

log = logging.getLogger("sandbar.engine")
WARM_PREFIX = "warm-"
REFILL_DELAY = 0.1  # seconds
STOP_GRACE_SECONDS = 2.0


def unmount_all_under(directory: Path) -> None:
    """Detach every mount at or below ``directory``, deepest first."""
    prefix = str(directory.absolute())
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    inside = [p for p in points if p == prefix or p.startswith(prefix + "/")]
    for point in sorted(set(inside), key=lambda p: -p.count("/")):
        libc.umount2(point.encode(), MNT_DETACH)


class Runtime:
    """Starts, stops and enters sandboxes on this host."""

    def __init__(self, config: EngineConfig, *, default_rootfs: str) -> None:
        self.config = config
        self.sandboxes_dir = config.engine_dir / "sandboxes"
        # Mount points and the generated /etc live under /run: the unprivileged uid
        # must be able to reach them, and the data directory may be private (0700).
        self.run_dir = Path("/run/sandbar") / config.instance_id
        self.etc_dir = self.run_dir / "etc"
        # Where new sandboxes' disks go when the host can make it (see DiskPool); disks
        # made before it, in sandboxes_dir, stay where they are.
        self.pool = DiskPool(config.engine_dir / "disk-pool.img", self.run_dir / "disk-pool")
        self.pool_ready = False
        self.cgroups = CgroupManager(config.instance_id)
        self.running: dict[str, RunningSandbox] = {}
        # Starts every process that enters a sandbox, under the sandboxes' seccomp filter.
        self.spawner = Spawner()
        # What default sandboxes run on (the engine's Debian image), never the host's /usr.
        self.default_rootfs = default_rootfs
        self.uids = UidRange(config.sandbox_uid, config.sandbox_uid_count)
        self._uid_claim: int | None = None  # held while the engine runs (ids.claim)
        # The uids the engine's records hold (set by the engine); the runtime adds those
        # of the sandboxes it runs and of the warm pool, which have no record.
        self.recorded_uids: Callable[[], set[int]] = set
        # /proc showing each sandbox's own limits (prereqs' "proc-limits" feature).
        self.proc_limits = True
        self.lxcfs = Lxcfs(self.run_dir / "lxcfs")
        self.egress = Egress(
            config.instance_id,
            EgressPolicy(
                allow=parse_cidrs(",".join(config.egress_allow), what="SANDBAR_EGRESS_ALLOW"),
                deny=parse_cidrs(",".join(config.egress_deny), what="SANDBAR_EGRESS_DENY"),
            ),
        )
        self.user_network = UserNetwork(self.egress, shutil.which("slirp4netns"))
        # Whether the host can give sandboxes a network (prereqs); the engine refuses
        # networked sandboxes with a 400 when it cannot.
        self.network = self.user_network.slirp is not None
        self.launcher = Launcher(self.etc_dir, self.uids, self.lxcfs, self.user_network)
        self.entrance = Entrance(self.spawner)
        # Started sandboxes with the default spec, waiting to be handed out by claim().
        self._pool: list[RunningSandbox] = []
        self._pool_uids: set[int] = set()  # taken by pool sandboxes being prepared
        self._pool_task: asyncio.Task[None] | None = None
        self._closing = False

    # -- engine lifetime -------------------------------------------------------

    def setup(self) -> None:
        """Write the generated /etc and create the instance cgroups (the host is checked
        before, by :mod:`dashboard.engine.prereqs`)."""
        try:
            self._uid_claim = ids.claim(self.uids, str(self.config.data_dir))
        except ids.UidRangeTaken as error:
            raise RuntimeError_(str(error)) from None
        self.sandboxes_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # An engine that died left its processes, mounts and maybe pool sandboxes
        # behind. Its processes go first: while one lives, the disk it holds keeps the
        # old pool mounted underneath, and XFS refuses to mount that pool a second time.
        self.cgroups.setup()
        unmount_all_under(self.run_dir)
        for directory in (self.run_dir.parent, self.run_dir):
            os.chmod(directory, 0o711)  # noqa: S103 -- the sandbox uid must traverse, not list
        try:
            # Only a pool that may hold a recorded sandbox's disk is worth refusing for.
            self.pool_ready = self.pool.mount(holds_disks=bool(self.recorded_uids()))
        except DiskError as error:
            raise RuntimeError_(str(error)) from None
        for place in (self.sandboxes_dir, self.disks_dir):
            for leftover in place.glob(f"{WARM_PREFIX}*"):
                shutil.rmtree(leftover, ignore_errors=True)
        if self.network:  # never a networked sandbox without its firewall: stop here
            try:
                self.egress.setup()
            except EgressError as error:
                raise RuntimeError_(str(error)) from None
        self.launcher.etc_binds = rootfs.write_etc(self.etc_dir)
        self.launcher.host_binds = rootfs.host_binds()
        self.launcher.lxcfs_up = self.proc_limits and self.lxcfs.start()

    async def shutdown(self) -> None:
        """Stop every running sandbox and remove the instance cgroups."""
        self._closing = True
        if self._pool_task is not None:
            self._pool_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pool_task
        warm_ids = []
        for warm in self._pool:
            self.running[warm.spec.id] = warm
            warm_ids.append(warm.spec.id)
        self._pool.clear()
        await asyncio.gather(
            *(self.stop(sandbox_id, force=True) for sandbox_id in list(self.running)),
            return_exceptions=True,
        )
        for warm_id in warm_ids:
            self.disk(warm_id).delete()
            shutil.rmtree(self.sandbox_dir(warm_id), ignore_errors=True)
        self.cgroups.teardown()
        self.egress.teardown()
        self.lxcfs.stop()
        self.spawner.close()
        if self._uid_claim is not None:
            ids.release(self._uid_claim, self.uids)
            self._uid_claim = None
        # Never delete through a mount that is still there.
        unmount_all_under(self.run_dir)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    # -- the warm pool ---------------------------------------------------------

    def allocate_uid(self) -> int:
        """A host uid that no sandbox holds, recorded or not."""
        taken = self.recorded_uids()
        taken.update(running.spec.uid for running in self.running.values())
        taken.update(warm.spec.uid for warm in self._pool)
        taken.update(self._pool_uids)
        try:
            return self.uids.allocate(taken)
        except UidRangeFull as error:
            raise RuntimeError_(str(error)) from None

    def pool_spec(self, sandbox_id: str) -> SandboxSpec:
        """The spec of a default sandbox: what the pool holds ready (any uid)."""
        config = self.config
        return SandboxSpec(
            id=sandbox_id,
            cpu=config.default_cpu,
            memory=config.default_memory,
            disk=config.default_disk,
            network_block_all=False,
            rootfs=self.default_rootfs,
        )

    def fill_pool(self, delay: float = 0.0) -> None:
        """Top the pool up in the background (it holds ``warm_pool`` started sandboxes)."""
        if self._closing or self.config.warm_pool <= 0 or not self.network:
            return  # pool sandboxes are networked
        if self._pool_task is None or self._pool_task.done():
            self._pool_task = asyncio.create_task(self._fill_pool(delay), name="warm-pool")

    async def _fill_pool(self, delay: float) -> None:
        await asyncio.sleep(delay)
        while not self._closing and len(self._pool) < self.config.warm_pool:
            spec = self.pool_spec(f"{WARM_PREFIX}{uuid.uuid4().hex}")
            try:
                spec = replace(spec, uid=self.allocate_uid())
                self._pool_uids.add(spec.uid)
                await self.create(spec)
                await self.start(spec)
            except (OSError, DiskError, RuntimeError_) as error:
                log.warning("could not prepare a warm sandbox: %s", error)
                await self.destroy(spec.id)
                return
            finally:
                self._pool_uids.discard(spec.uid)
            self._pool.append(self.running.pop(spec.id))

    async def claim(self, spec: SandboxSpec) -> int | None:
        """Hand a started sandbox from the pool to ``spec`` if the pool holds its kind.

        Its disk, cgroups and directory are renamed to the new id; nothing inside the
        sandbox changes. Returns the host uid it runs as (now the new sandbox's), or
        None when ``spec`` must be created and started instead.
        """
        if self.pool_spec(spec.id) != replace(spec, uid=0):
            return None
        try:
            while self._pool:
                warm = self._pool.pop(0)
                if warm.init.returncode is None:
                    try:
                        self._adopt(warm, replace(spec, uid=warm.spec.uid))
                    except OSError as error:
                        log.warning("could not take a warm sandbox: %s", error)
                        self.running[warm.spec.id] = warm
                        await self.destroy(warm.spec.id)
                        continue
                    return warm.spec.uid
                self.running[warm.spec.id] = warm
                await self.destroy(warm.spec.id)
            return None
        finally:
            # A create is usually followed at once by a first command: refill a moment
            # later so that the two do not compete for the CPU.
            self.fill_pool(delay=REFILL_DELAY)

    def _adopt(self, warm: RunningSandbox, spec: SandboxSpec) -> None:
        # The cgroups keep their pool name (cgroup v2 cannot rename them); the handle
        # in RunningSandbox is what every later operation uses.
        old_dir, new_dir = self.sandbox_dir(warm.spec.id), self.sandbox_dir(spec.id)
        old_dir.rename(new_dir)  # the loop device holds the image open; a rename is safe
        warm.disk = Disk(new_dir / "disk.img", warm.disk.mount_point, spec.uid)
        warm.spec = spec
        warm.started_at = time.time()
        self.running[spec.id] = warm

    # -- sandbox lifetime ------------------------------------------------------

    @property
    def disks_dir(self) -> Path:
        """Where new disk images go: the pool when there is one."""
        return self.pool.mount_point if self.pool_ready else self.sandboxes_dir

    def sandbox_dir(self, sandbox_id: str) -> Path:
        """Where a sandbox's disk image lives (an older one's may be outside the pool)."""
        legacy = self.sandboxes_dir / sandbox_id
        if not self.pool_ready or legacy.exists():
            return legacy
        return self.disks_dir / sandbox_id

    def disk(self, sandbox_id: str, uid: int = 0) -> Disk:
        """The disk of a sandbox (whether or not it exists yet); a running one's own.

        ``uid`` is who owns its home and /tmp, needed only to create or mount it.
        """
        running = self.running.get(sandbox_id)
        if running is not None:
            return running.disk
        return Disk(self.sandbox_dir(sandbox_id) / "disk.img", self.run_dir / sandbox_id, uid)

    async def create(self, spec: SandboxSpec) -> None:
        """Create the sandbox's persistent disk."""
        await self.disk(spec.id, spec.uid).create(spec.disk, templates=self.disks_dir / "templates")

    async def clone(self, parent_id: str, spec: SandboxSpec) -> bool:
        """Give ``spec`` a copy of a running sandbox's disk as it is now (a fork's first
        half; :meth:`start` boots it, apart, so the parent is held only for the copy).

        The copy is a reflink in the pool (milliseconds, no blocks written until either
        side changes them); returns whether it was one. The new sandbox's files become
        its own uid's when its disk is first mounted (:meth:`Disk.mount`). A copy that
        fails leaves no image behind, and one cut short by a crash leaves none under the
        image's name: the image exists only once it is whole.
        """
        parent = self.get(parent_id)
        target = self.disk(spec.id, spec.uid).image
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.partial")
        try:
            shared = await asyncio.to_thread(clone_while_frozen, parent.disk, partial)
            os.replace(partial, target)
        except (OSError, DiskError) as error:
            partial.unlink(missing_ok=True)
            raise RuntimeError_(f"copying the sandbox's disk failed: {error}") from error
        return shared

    def is_running(self, sandbox_id: str) -> bool:
        """Whether the sandbox's process tree is up."""
        running = self.running.get(sandbox_id)
        return running is not None and running.init.returncode is None

    def release_stale(self, sandbox_id: str) -> None:
        """Unmount a disk left mounted by an engine that died without cleaning up."""
        unbind_volumes(self.volumes_dir(sandbox_id))
        self.root_layer(sandbox_id).unmount()
        self.disk(sandbox_id).unmount()

    def volumes_dir(self, sandbox_id: str) -> Path:
        """Where a running sandbox's volumes are bound for bubblewrap to find."""
        return self.run_dir / f"{sandbox_id}.volumes"

    def root_layer(self, sandbox_id: str, rootfs: str | None = None) -> RootLayer:
        """The overlay root of a sandbox made from a snapshot (mounted or not)."""
        return RootLayer.beside(self.disk(sandbox_id).mount_point, rootfs)

    async def mount_root(self, spec: SandboxSpec) -> RootLayer | None:
        """Mount a snapshot sandbox's overlay root (its disk must be mounted)."""
        if spec.rootfs is None:
            return None
        layer = self.root_layer(spec.id, spec.rootfs)
        full = is_full_root(layer.lower)
        points = tuple(m.target.lstrip("/") for m in spec.mounts)
        symlinks: tuple[tuple[str, str], ...] = ()
        if not full:
            points += tuple(name for kind, name in self.launcher.host_binds if kind == "bind")
            symlinks = tuple(
                (kind.removeprefix("symlink:"), name)
                for kind, name in self.launcher.host_binds
                if kind != "bind"
            )
        await layer.mount(spec.uid, points, symlinks, own_etc=has_own_etc(layer.lower))
        return layer

    @contextlib.asynccontextmanager
    async def files(self, spec: SandboxSpec) -> AsyncIterator[SandboxFiles]:
        """A sandbox's files mounted on the host, whether it runs or not.

        A stopped sandbox's disk (and snapshot root) are unmounted again on leaving; a
        running one's stay as they are.
        """
        running = self.is_running(spec.id)
        disk = self.disk(spec.id)
        try:
            await disk.mount()
            yield SandboxFiles(layer=await self.mount_root(spec), home=disk.home)
        finally:
            if not running and not self.is_running(spec.id):
                self.root_layer(spec.id).unmount()
                disk.unmount()

    async def start(self, spec: SandboxSpec) -> None:
        """Mount the disk, create cgroups, launch bubblewrap and wire up the network."""
        if self.is_running(spec.id):
            return
        if spec.uid not in self.uids:
            raise RuntimeError_(f"the sandbox has no host uid of its own (uid {spec.uid})")
        disk = self.disk(spec.id, spec.uid)
        if not disk.image.exists():
            raise RuntimeError_("the sandbox's disk image is missing")
        cgroup = self.cgroups.sandbox(spec.id)
        try:
            await disk.mount()
            disk.clear_tmp()
            await self.mount_root(spec)
            cgroup.create(cpu=spec.cpu, memory_gib=spec.memory, pids_max=self.config.pids_max)
            running = await self.launcher.launch(
                spec, disk, cgroup, self.volumes_dir(spec.id), networked=self.network
            )
        except (OSError, DiskError, RuntimeError_) as error:
            cgroup.kill_now()
            await cgroup.wait_empty(2.0)
            await cgroup.remove()
            unbind_volumes(self.volumes_dir(spec.id))
            self.root_layer(spec.id).unmount()
            disk.unmount()
            with contextlib.suppress(OSError):
                disk.mount_point.rmdir()
            if isinstance(error, RuntimeError_):
                raise
            raise RuntimeError_(str(error)) from error
        self.running[spec.id] = running
        # Later, so the spare does not compete with a first command sent right away.
        self.entrance.prepare_spare(running, delay=SPARE_DELAY)

    async def set_network(
        self, sandbox_id: str, *, block_all: bool, allow_list: tuple[str, ...]
    ) -> None:
        """Apply new network settings to a running sandbox now (a stopped one gets them
        at its next start). One started without a network gets one."""
        running = self.running.get(sandbox_id)
        if running is None or running.closed:
            return
        running.spec = replace(
            running.spec, network_block_all=block_all, network_allow_list=allow_list
        )
        if running.network is not None:
            try:
                await self.egress.apply(
                    running.spec.uid, block_all=block_all, allow_list=allow_list
                )
            except EgressError as error:
                raise RuntimeError_(
                    f"the sandbox's egress rules could not be set: {error}"
                ) from None
        elif not block_all and self.network:
            process, exit_fd = await self.user_network.start(
                running.init_pid, running.cgroup, running.spec
            )
            running.network, running.network_exit_fd = process, exit_fd

    async def stop(self, sandbox_id: str, *, force: bool = False) -> None:
        """Stop the sandbox: SIGTERM its workload (unless forced), then kill the tree.

        Two stops of one sandbox at once (an API call and the timer that notices a
        dead sandbox) share one: the second waits for the first to finish.
        """
        running = self.running.get(sandbox_id)
        if running is None:
            return
        if running.stopping is not None:
            await asyncio.shield(running.stopping)
            return
        running.stopping = asyncio.get_running_loop().create_future()
        try:
            await self._stop(sandbox_id, running, force)
        finally:
            running.stopping.set_result(None)

    async def _stop(self, sandbox_id: str, running: RunningSandbox, force: bool) -> None:
        running.closed = True
        await self.entrance.close(running)
        cgroup = running.cgroup
        if not force:
            helpers = running.helper_pids()
            workload = [p for p in cgroup.pids() if p not in helpers]
            for pid in workload:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            while workload and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                workload = [p for p in cgroup.pids() if p not in helpers]
        cgroup.kill_now()
        kill(running.init)
        await running.init.wait()
        if running.network_exit_fd is not None:
            with contextlib.suppress(OSError):
                os.close(running.network_exit_fd)
        if running.network is not None:
            kill(running.network)
            await running.network.wait()
            await self.user_network.forget(running.spec.uid)
        await cgroup.wait_empty(5.0)
        await cgroup.remove()
        for fd in (running.userns_fd, running.root_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.running.pop(sandbox_id, None)
        unbind_volumes(self.volumes_dir(sandbox_id))
        RootLayer.beside(running.disk.mount_point).unmount()
        running.disk.unmount()
        with contextlib.suppress(OSError):
            running.disk.mount_point.rmdir()

    async def destroy(self, sandbox_id: str) -> None:
        """Stop the sandbox and remove its disk for good."""
        await self.stop(sandbox_id, force=True)
        self.root_layer(sandbox_id).unmount()
        self.disk(sandbox_id).delete()
        shutil.rmtree(self.sandbox_dir(sandbox_id), ignore_errors=True)

    async def resize(self, spec: SandboxSpec, *, grow_disk: bool) -> None:
        """Apply new limits: CPU and memory live, disk only while stopped."""
        running = self.running.get(spec.id)
        if running is not None:
            running.cgroup.set_limits(
                cpu=spec.cpu, memory_gib=spec.memory, pids_max=self.config.pids_max
            )
            running.spec = replace(running.spec, cpu=spec.cpu, memory=spec.memory, disk=spec.disk)
        if grow_disk:
            await self.disk(spec.id).grow(spec.disk)

    # -- entering a sandbox ----------------------------------------------------

    def get(self, sandbox_id: str) -> RunningSandbox:
        """The running sandbox, or :class:`NotRunning`."""
        running = self.running.get(sandbox_id)
        if running is None or running.init.returncode is not None:
            raise NotRunning(f"sandbox {sandbox_id} is not running")
        return running

    async def spawn(
        self,
        sandbox_id: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str = rootfs.HOME,
        pty: bool = False,
        stdin: bool = False,
        pass_fds: Sequence[int] = (),
    ) -> SandboxProcess:
        """Start ``argv`` inside a running sandbox as its user, in its own exec cgroup.

        With ``pty=True`` the process gets a fresh pseudo-terminal as its controlling
        terminal (job control and Ctrl-C work inside); the master end is returned in
        :attr:`SandboxProcess.pty_master`. Otherwise stdout and stderr are combined into
        one pipe, and stdin is a pipe when ``stdin=True`` (else empty). ``pass_fds``
        are inherited under the same numbers (sessions use them for separate stdout and
        stderr pipes). A plain command (no PTY, no extra fds) is handed to the sandbox's
        spare process when one is waiting, which saves most of the start-up time.
        """
        return await self.entrance.spawn(
            self.get(sandbox_id), argv, env=env, cwd=cwd, pty=pty, stdin=stdin, pass_fds=pass_fds
        )

    def sweep(self) -> None:
        """Remove exec cgroups that have emptied since their exec returned."""
        for running in self.running.values():
            running.cgroup.sweep_exec_dirs()
