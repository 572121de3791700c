"""Running sandboxes: bubblewrap, cgroups, a loop-mounted disk and user-mode networking.

A started sandbox is a long-lived bubblewrap whose command is a sleeper; everything
else (execs, code runs and, later, sessions and PTYs) joins its namespaces through
:meth:`Runtime.spawn`, so processes persist between execs and stop kills the whole tree.
Two things keep latency low: a small pool of started default sandboxes that create
hands out (:meth:`Runtime.claim`), and in each sandbox a spare process, already inside
its namespaces, that becomes the next plain command.

Privilege model: the engine runs as host root only to set up cgroups, mounts and
namespaces. Every process inside a sandbox, bubblewrap itself and the network helper
run as the sandbox's own unprivileged host uid (``ids.py``) with no capabilities, an
empty bounding set, ``no_new_privs`` and the seccomp filter (``seccomp.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from dashboard.engine.config import EngineConfig
from dashboard.engine.runtime import ids, rootfs, seccomp
from dashboard.engine.runtime.cgroups import CgroupManager, SandboxCgroup
from dashboard.engine.runtime.disk import MNT_DETACH, Disk, DiskError, libc
from dashboard.engine.runtime.egress import Egress, EgressError, EgressPolicy, parse_cidrs
from dashboard.engine.runtime.ids import UidRange, UidRangeFull, mapping_userns
from dashboard.engine.runtime.layers import RootLayer, has_own_etc, is_full_root
from dashboard.engine.runtime.mounts import Mount, bind_volumes, unbind_volumes
from dashboard.engine.runtime.procfs import Lxcfs
from dashboard.engine.runtime.spawn import Child, Spawner

log = logging.getLogger("sandbar.engine")
WARM_PREFIX = "warm-"
REFILL_DELAY = 0.1  # seconds
NS_GET_USERNS = 0xB701  # ioctl: the user namespace that owns a namespace
STOP_GRACE_SECONDS = 2.0
READY_TIMEOUT = 10.0
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Written into each cgroup.procs by a tiny shell before it execs the real command, so
# that the command starts inside its cgroups (no window in which it could escape).
JOIN_CGROUPS = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


class RuntimeError_(RuntimeError):
    """A sandbox could not be started, stopped or reached."""


class NotRunning(RuntimeError_):
    """The sandbox has no running process tree."""


@dataclass(frozen=True)
class SandboxSpec:
    """What the runtime needs to know about a sandbox."""

    id: str
    cpu: int
    memory: int  # GiB
    disk: int  # GiB
    network_block_all: bool
    mounts: tuple[Mount, ...] = ()  # volumes, bound read-write
    rootfs: str | None = None  # a snapshot's or the default image's root (None: host /usr)
    uid: int = 0  # the sandbox's own host uid (0: none given yet; never runs as 0)
    network_allow_list: tuple[str, ...] = ()  # IPv4 CIDRs; empty: the default egress policy


@dataclass(frozen=True)
class SandboxFiles:
    """A sandbox's files as mounted on the host."""

    layer: RootLayer | None  # a snapshot sandbox's overlay root (None: the host's /usr)
    home: Path  # its home directory on its disk


@dataclass
class RunningSandbox:
    """Host-side handles of one started sandbox."""

    spec: SandboxSpec
    init: asyncio.subprocess.Process
    init_pid: int  # host pid of the sandbox's pid 1
    userns_fd: int  # the outer user namespace (it owns all the other namespaces)
    root_fd: int  # O_PATH handle on the sandbox's root directory
    cgroup: SandboxCgroup
    disk: Disk
    network: asyncio.subprocess.Process | None = None
    network_exit_fd: int | None = None
    started_at: float = field(default_factory=time.time)
    # A process already inside the sandbox, waiting to become the next command.
    spare: _Spare | None = None
    spare_task: asyncio.Task[None] | None = None
    spares_work: bool = True
    closed: bool = False
    # Set while a stop is under way; a second stop waits for it instead of repeating it.
    stopping: asyncio.Future[None] | None = None
    # Whether its root has /usr/bin/setpriv, the way in that empties the bounding set.
    drops_inside: bool = True

    def helper_pids(self) -> set[int]:
        """Pids that make up the sandbox itself rather than its workload."""
        pids = {self.init.pid, self.init_pid}
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in _children(self.init_pid))
        if self.network is not None:
            pids.add(self.network.pid)
        return pids


def _kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL a child without Popen.send_signal, whose poll() would reap it behind
    asyncio's back (asyncio then logs "exit status already read")."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)


async def _read_fd(fd: int, size: int, limit: float) -> bytes:
    """Read up to ``size`` bytes from a pipe without blocking the event loop."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[bytes] = loop.create_future()

    def on_readable() -> None:
        if not result.done():
            try:
                result.set_result(os.read(fd, size))
            except OSError as error:
                result.set_exception(error)

    loop.add_reader(fd, on_readable)
    try:
        return await asyncio.wait_for(result, limit)
    except TimeoutError:
        return b""
    finally:
        loop.remove_reader(fd)


def _unmount_all_under(directory: Path) -> None:
    """Detach every mount at or below ``directory``, deepest first."""
    prefix = str(directory.absolute())
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    inside = [p for p in points if p == prefix or p.startswith(prefix + "/")]
    for point in sorted(set(inside), key=lambda p: -p.count("/")):
        libc.umount2(point.encode(), MNT_DETACH)


def _children(pid: int) -> list[str]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return handle.read().split()


# Run by a spare process: read NUL-separated cwd, environment and argv from the pipe
# named by $0 (nothing there is ever parsed by a shell), close it, become the command.
SPARE_SCRIPT = 'mapfile -d "" -u "$0" a && eval "exec $0<&-" && exec /usr/bin/env -i -C "${a[@]}"'
SPARE_MAX_MESSAGE = 60_000  # stays below a pipe's buffer, so writing never blocks
SPARE_DELAY = 0.2  # seconds after a start before the first spare is made


@dataclass
class _Spare:
    """A command-in-waiting: spawned through the full namespace dance ahead of time."""

    process: SandboxProcess
    control: int  # write end of the pipe the spare reads its command from

    def discard(self) -> None:
        """Kill it and free its handles."""
        with contextlib.suppress(OSError):
            os.close(self.control)
        self.process.kill()
        self.process.release()


class SandboxProcess:
    """A process started inside a sandbox by :meth:`Runtime.spawn`."""

    def __init__(
        self,
        process: Child,
        cgroup: SandboxCgroup,
        exec_dir: Path | None,
        pty_master: int | None,
        output: asyncio.StreamReader | None = None,
        output_transport: asyncio.ReadTransport | None = None,
    ) -> None:
        self.on_exit: Callable[[], None] | None = None
        self.process = process
        self.cgroup = cgroup
        self.exec_dir = exec_dir
        self.pty_master = pty_master
        self._output = output
        self._output_transport = output_transport

    @property
    def stdout(self) -> asyncio.StreamReader | None:
        """Combined stdout and stderr (non-PTY processes)."""
        return self._output

    @property
    def stdin(self) -> asyncio.StreamWriter | None:
        """Standard input when ``stdin=True`` was asked for."""
        return self.process.stdin

    async def wait(self) -> int:
        """Wait for the process; a death by signal N is reported as 128+N, like a shell."""
        code = await self.process.wait()
        if self.on_exit is not None:
            callback, self.on_exit = self.on_exit, None
            callback()
        return 128 - code if code < 0 else code

    def kill(self) -> None:
        """Kill this process and everything it started, leaving the sandbox running."""
        if self.exec_dir is not None:
            self.cgroup.kill_dir(self.exec_dir)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def release(self) -> None:
        """Drop host resources; the exec cgroup goes once its last process exits."""
        if self._output_transport is not None:
            self._output_transport.close()
            self._output_transport = None
        if self.pty_master is not None:
            with contextlib.suppress(OSError):
                os.close(self.pty_master)
            self.pty_master = None
        self.cgroup.remove_exec_dir(self.exec_dir)


class Runtime:
    """Starts, stops and enters sandboxes on this host."""

    def __init__(self, config: EngineConfig, *, default_rootfs: str) -> None:
        self.config = config
        self.sandboxes_dir = config.engine_dir / "sandboxes"
        # Mount points and the generated /etc live under /run: the unprivileged uid
        # must be able to reach them, and the data directory may be private (0700).
        self.run_dir = Path("/run/sandbar") / config.instance_id
        self.etc_dir = self.run_dir / "etc"
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
        self._etc_binds: list[str] = []
        self._host_binds: list[tuple[str, str]] = []
        self._slirp = shutil.which("slirp4netns")
        # Whether the host can give sandboxes a network (prereqs); the engine refuses
        # networked sandboxes with a 400 when it cannot.
        self.network = self._slirp is not None
        # /proc showing each sandbox's own limits (prereqs' "proc-limits" feature).
        self.proc_limits = True
        self.lxcfs = Lxcfs(self.run_dir / "lxcfs")
        self._lxcfs_up = False
        self.egress = Egress(
            config.instance_id,
            EgressPolicy(
                allow=parse_cidrs(",".join(config.egress_allow), what="SANDBAR_EGRESS_ALLOW"),
                deny=parse_cidrs(",".join(config.egress_deny), what="SANDBAR_EGRESS_DENY"),
            ),
        )
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
        # An engine that died left its mounts (and maybe pool sandboxes) behind.
        _unmount_all_under(self.run_dir)
        for leftover in self.sandboxes_dir.glob(f"{WARM_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        for directory in (self.run_dir.parent, self.run_dir):
            os.chmod(directory, 0o711)  # noqa: S103 -- the sandbox uid must traverse, not list
        if self.network:  # never a networked sandbox without its firewall: stop here
            try:
                self.egress.setup()
            except EgressError as error:
                raise RuntimeError_(str(error)) from None
        self._etc_binds = rootfs.write_etc(self.etc_dir)
        self._host_binds = rootfs.host_binds()
        self.cgroups.setup()
        self._lxcfs_up = self.proc_limits and self.lxcfs.start()

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
        _unmount_all_under(self.run_dir)
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

    def sandbox_dir(self, sandbox_id: str) -> Path:
        """Where a sandbox's disk image and mount point live."""
        return self.sandboxes_dir / sandbox_id

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
        await self.disk(spec.id, spec.uid).create(
            spec.disk, templates=self.config.engine_dir / "templates"
        )

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
            points += tuple(name for kind, name in self._host_binds if kind == "bind")
            symlinks = tuple(
                (kind.removeprefix("symlink:"), name)
                for kind, name in self._host_binds
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
            running = await self._launch(spec, disk, cgroup)
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
        self._prepare_spare(running, delay=SPARE_DELAY)

    async def _launch(self, spec: SandboxSpec, disk: Disk, cgroup: SandboxCgroup) -> RunningSandbox:
        fds: list[int] = []
        try:
            etc_fd = os.open(self.etc_dir, os.O_PATH | os.O_DIRECTORY)
            fds.append(etc_fd)
            home_fd = os.open(disk.home, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
            fds.append(home_fd)
            tmp_fd = os.open(disk.tmp, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
            fds.append(tmp_fd)
            sources = await self._bind_volumes(spec)
            volume_binds = [(src, m.target) for src, m in zip(sources, spec.mounts, strict=True)]
            overlay_fd: int | None = None
            if spec.rootfs is not None:
                overlay_fd = os.open(
                    self.root_layer(spec.id).merged, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW
                )
                fds.append(overlay_fd)
            seccomp_fd = seccomp.program_fd()
            fds.append(seccomp_fd)
            # bubblewrap makes the user namespace and waits on block_r while the engine
            # writes its id map (info_w tells which process to write it for).
            block_r, block_w = os.pipe()
            fds.append(block_r)
            info_r, info_w = os.pipe()
            fds.append(info_w)
            argv = [
                *self._join(cgroup.procs_files()),
                *self._drop_privileges(spec.uid),
                "bwrap",
                "--userns-block-fd", str(block_r), "--info-fd", str(info_w),
                "--seccomp", str(seccomp_fd),
                *self._bwrap_args(
                    spec, etc_fd=etc_fd, home_fd=home_fd, tmp_fd=tmp_fd,
                    volume_binds=volume_binds, root_fd=overlay_fd,
                ),
                "/bin/sh", "-c", "echo ready; exec sleep infinity",
            ]  # fmt: skip
            init = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=fds,
                env={"PATH": HOST_PATH},
                start_new_session=True,
            )
        finally:
            for fd in fds:
                os.close(fd)
        assert init.stdout is not None and init.stderr is not None
        network: tuple[asyncio.subprocess.Process, int] | None = None
        failure = ""
        try:
            await self._map_ids(info_r, block_w, spec.uid)
            line = await asyncio.wait_for(init.stdout.readline(), READY_TIMEOUT)
        except (TimeoutError, OSError, ValueError, KeyError, RuntimeError_) as error:
            line, failure = b"", f"bubblewrap did not start: {error}"
        except BaseException:  # cancelled: it must not go on starting on its own
            _kill(init)
            raise
        finally:
            os.close(info_r)
            os.close(block_w)
        # The network helper starts only once bwrap has finished: both would configure
        # the loopback interface, and bwrap fails when slirp4netns got there first.
        if line == b"ready\n" and not spec.network_block_all and self.network:
            try:
                network = await self._start_network(int(_children(init.pid)[0]), cgroup, spec)
            except (OSError, IndexError, RuntimeError_) as error:
                line, failure = b"", str(error)
        if line != b"ready\n":
            _kill(init)
            stderr = await init.stderr.read()
            await init.wait()
            reason = (
                failure or stderr.decode(errors="replace").strip() or "bubblewrap did not start"
            )
            raise RuntimeError_(reason)
        init_pid = int(_children(init.pid)[0])
        userns_fd = os.open(f"/proc/{init_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        root_fd = os.open(f"/proc/{init_pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            drops_inside = os.stat("usr/bin/setpriv", dir_fd=root_fd) is not None
        except OSError:
            drops_inside = False
        if not drops_inside:
            log.warning(
                "no /usr/bin/setpriv in sandbox %s: its processes keep a full "
                "capability bounding set (they still hold no capability)",
                spec.id,
            )
        return RunningSandbox(
            drops_inside=drops_inside,
            spec=spec,
            init=init,
            init_pid=init_pid,
            userns_fd=userns_fd,
            root_fd=root_fd,
            cgroup=cgroup,
            disk=disk,
            network=network[0] if network else None,
            network_exit_fd=network[1] if network else None,
        )

    async def _map_ids(self, info_r: int, block_w: int, uid: int) -> None:
        """Write the sandbox's id map once bubblewrap has made its user namespace.

        Two ids are mapped: the sandbox's user (1000 inside) to its own host uid, and
        root inside to a second host uid of its own, which only the engine's way in
        uses for a moment to drop every capability before becoming the user.
        """
        info = b""
        while not info.rstrip().endswith(b"}"):
            chunk = await _read_fd(info_r, 4096, READY_TIMEOUT)
            if not chunk:
                raise OSError("no namespace information from bubblewrap")
            info += chunk
        child = int(json.loads(info)["child-pid"])
        mapping = f"0 {self.uids.root_of(uid)} 1\n{rootfs.SANDBOX_UID} {uid} 1\n"
        for name in ("uid_map", "gid_map"):
            fd = os.open(f"/proc/{child}/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, mapping.encode())
            finally:
                os.close(fd)
        os.write(block_w, b"1")

    def _bwrap_args(
        self,
        spec: SandboxSpec,
        *,
        etc_fd: int,
        home_fd: int,
        tmp_fd: int,
        volume_binds: Sequence[tuple[str, str]] = (),
        root_fd: int | None = None,
    ) -> list[str]:
        args = [
            # No --disable-userns: the seccomp filter refuses new namespaces instead,
            # and the engine writes the id map (see _map_ids).
            "--unshare-all", "--unshare-user",
            "--hostname", "sandbox", "--die-with-parent", "--new-session",
        ]  # fmt: skip
        lower = Path(spec.rootfs) if spec.rootfs is not None else None
        if root_fd is not None:
            # A snapshot: its overlay is the root, writable where its files allow.
            args += ["--bind-fd", str(root_fd), "/"]
        if lower is None or not is_full_root(lower):
            for kind, name in self._host_binds:
                if kind == "bind":
                    args += ["--ro-bind", f"/{name}", f"/{name}"]
                elif root_fd is None:  # in an overlay root the engine made the link
                    args += ["--symlink", kind.removeprefix("symlink:"), f"/{name}"]
        if lower is None or not has_own_etc(lower):
            args += ["--ro-bind-fd", str(etc_fd), "/etc"]
            for name in self._etc_binds:
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        else:  # the snapshot's /etc, but DNS through slirp4netns as everywhere
            args += ["--ro-bind", str(self.etc_dir / "resolv.conf"), "/etc/resolv.conf"]
        # /tmp, /dev/shm and /var/tmp here are paths inside the sandbox, not the host's.
        args += [
            "--proc", "/proc", *(self.lxcfs.bwrap_args() if self._lxcfs_up else ()),
            "--dev", "/dev",
            "--size", str(64 << 20), "--tmpfs", "/dev/shm",  # noqa: S108
            "--bind-fd", str(tmp_fd), "/tmp",  # noqa: S108
        ]  # fmt: skip
        if root_fd is None:
            # From a snapshot, home is the overlay's (the snapshot's files, writes on disk).
            args += ["--bind-fd", str(home_fd), rootfs.HOME]
        for source, target in volume_binds:
            args += ["--bind", source, target]
        if root_fd is None:
            # The default root is bwrap's tmpfs: read-only; an overlay root stays as is.
            args += ["--dir", "/root", "--dir", "/var/tmp", "--remount-ro", "/"]  # noqa: S108
        args += [
            "--chdir", rootfs.HOME,
            "--clearenv", "--setenv", "PATH", rootfs.PATH, "--setenv", "HOME", rootfs.HOME,
        ]  # fmt: skip
        return args

    def _join(self, procs_files: Sequence[str]) -> list[str]:
        return ["/bin/sh", "-c", JOIN_CGROUPS, "sh", *procs_files, "--"]

    async def _bind_volumes(self, spec: SandboxSpec) -> list[str]:
        """Bind the volumes for bubblewrap, their shared owner shown as the sandbox's uid."""
        if not spec.mounts:
            return bind_volumes(self.volumes_dir(spec.id), (), self.uids.shared_owner)
        userns_fd = await mapping_userns(self.uids.shared_owner, spec.uid)
        try:
            return bind_volumes(
                self.volumes_dir(spec.id), spec.mounts, self.uids.shared_owner, userns_fd
            )
        finally:
            os.close(userns_fd)

    def _drop_privileges(self, uid: int) -> list[str]:
        """Become ``uid``: no groups, no capabilities (bounding set too), no_new_privs."""
        return [
            "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
        ]  # fmt: skip

    async def _start_network(
        self, pid: int, cgroup: SandboxCgroup, spec: SandboxSpec
    ) -> tuple[asyncio.subprocess.Process, int]:
        """Give the sandbox outbound user-mode networking, filtered by the egress policy.

        Returns the slirp4netns process and the pipe end whose closing makes it exit.
        """
        uid = spec.uid
        # The rules are in place before the first packet can leave.
        try:
            await self.egress.apply(
                uid, block_all=spec.network_block_all, allow_list=spec.network_allow_list
            )
        except EgressError as error:
            raise RuntimeError_(f"the sandbox's egress rules could not be set: {error}") from None
        try:
            return await self._start_slirp(pid, cgroup, uid)
        except BaseException:
            await self._forget_egress(uid)
            raise

    async def _forget_egress(self, uid: int) -> None:
        try:
            await self.egress.remove(uid)
        except EgressError as error:
            log.warning("could not remove the egress rules of uid %s: %s", uid, error)

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
            process, exit_fd = await self._start_network(
                running.init_pid, running.cgroup, running.spec
            )
            running.network, running.network_exit_fd = process, exit_fd

    async def _start_slirp(
        self, pid: int, cgroup: SandboxCgroup, uid: int
    ) -> tuple[asyncio.subprocess.Process, int]:
        net_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            # The user namespace owning the network namespace is bwrap's outer one,
            # whatever namespace the process has moved into since.
            userns_fd = fcntl.ioctl(net_fd, NS_GET_USERNS)
        except OSError:
            os.close(net_fd)
            raise
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        try:
            argv = [
                *self._join(cgroup.procs_files()),
                *self._drop_privileges(uid),
                self._slirp or "slirp4netns",
                "--configure", "--mtu=65520", "--disable-host-loopback", "--enable-seccomp",
                f"--userns-path=/proc/self/fd/{userns_fd}",
                "--netns-type=path", f"--ready-fd={ready_w}", f"--exit-fd={exit_r}",
                f"/proc/self/fd/{net_fd}", "tap0",
            ]  # fmt: skip
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                pass_fds=(userns_fd, net_fd, ready_w, exit_r),
                env={"PATH": HOST_PATH},
                start_new_session=True,
            )
        except BaseException:
            for fd in (ready_r, exit_w):
                os.close(fd)
            raise
        finally:
            for fd in (net_fd, userns_fd, ready_w, exit_r):
                os.close(fd)
        try:
            flag = await _read_fd(ready_r, 1, READY_TIMEOUT)
        finally:
            os.close(ready_r)
        if flag != b"1":
            os.close(exit_w)
            _kill(process)
            await process.wait()
            raise RuntimeError_("the user-mode network (slirp4netns) did not come up")
        return process, exit_w

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
        if running.spare_task is not None:
            running.spare_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running.spare_task
        if running.spare is not None:
            running.spare.discard()
            running.spare = None
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
        _kill(running.init)
        await running.init.wait()
        if running.network_exit_fd is not None:
            with contextlib.suppress(OSError):
                os.close(running.network_exit_fd)
        if running.network is not None:
            _kill(running.network)
            await running.network.wait()
            await self._forget_egress(running.spec.uid)
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
        running = self.get(sandbox_id)
        if not pty and not pass_fds:
            spared = self._use_spare(running, argv, env=env, cwd=cwd, stdin=stdin)
            if spared is not None:
                return spared
        return await self._spawn(
            running, argv, env=env, cwd=cwd, pty=pty, stdin=stdin, pass_fds=pass_fds
        )

    def _use_spare(
        self,
        running: RunningSandbox,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str,
        stdin: bool,
    ) -> SandboxProcess | None:
        """Hand the command to the waiting spare (a pipe write instead of six execs)."""
        spare, running.spare = running.spare, None
        if spare is None:
            self._prepare_spare(running)
            return None
        if spare.process.process.returncode is not None:
            # It died waiting: the snapshot has no bash, or something killed it.
            running.spares_work = False
            spare.discard()
            return None
        fields = [cwd, *(f"{key}={value}" for key, value in env.items()), *argv]
        message = b"".join(field.encode() + b"\0" for field in fields)
        if any("\0" in field for field in fields) or len(message) > SPARE_MAX_MESSAGE:
            running.spare = spare  # keep it for a command it can carry
            return None
        try:
            os.write(spare.control, message)
        except OSError:  # it died a moment ago
            spare.discard()
            self._prepare_spare(running)
            return None
        os.close(spare.control)
        if not stdin and spare.process.stdin is not None:
            spare.process.stdin.close()
        # The next spare is made once this command is over, not competing with it.
        spare.process.on_exit = lambda: self._prepare_spare(running)
        return spare.process

    def _prepare_spare(self, running: RunningSandbox, delay: float = 0.0) -> None:
        """Start making the next spare for a sandbox, in the background."""
        if running.closed or not running.spares_work or running.spare is not None:
            return
        if running.spare_task is not None and not running.spare_task.done():
            return
        running.spare_task = asyncio.create_task(self._make_spare(running, delay), name="spare")

    async def _make_spare(self, running: RunningSandbox, delay: float) -> None:
        await asyncio.sleep(delay)
        if running.closed:
            return
        read_end, write_end = os.pipe()
        try:
            process = await self._spawn(
                running,
                ["/bin/bash", "--noprofile", "--norc", "-c", SPARE_SCRIPT, str(read_end)],
                env={"PATH": rootfs.PATH},
                cwd="/",
                pty=False,
                stdin=True,
                pass_fds=(read_end,),
            )
        except BaseException as error:  # spares are an optimisation: never fatal
            os.close(write_end)
            if not isinstance(error, Exception):
                raise  # cancelled by a stop: the pipe is closed, nothing else to undo
            if not isinstance(error, RuntimeError_):
                log.exception("could not prepare a spare process")
            running.spares_work = False
            return
        finally:
            os.close(read_end)
        spare = _Spare(process, write_end)
        if running.closed or running.init.returncode is not None:
            spare.discard()
            return
        running.spare = spare

    async def _spawn(
        self,
        running: RunningSandbox,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str,
        pty: bool,
        stdin: bool,
        pass_fds: Sequence[int],
    ) -> SandboxProcess:
        exec_dir = running.cgroup.new_exec_dir()
        inner = ["/usr/bin/env", "-i", "-C", cwd, *(f"{k}={v}" for k, v in env.items())]
        if pty:
            inner = ["setsid", "--ctty", *inner]
        user = str(rootfs.SANDBOX_UID)
        if running.drops_inside:
            # Root inside for a moment, so that setpriv may empty the bounding set (a
            # process that joins a user namespace gets a full one) before it becomes
            # the user: nothing in a sandbox then holds or can gain a capability.
            become = ["-S", "0", "-G", "0", "--", "/usr/bin/setpriv", f"--reuid={user}",
                      f"--regid={user}", "--clear-groups", "--inh-caps=-all",
                      "--bounding-set=-all", "--no-new-privs"]  # fmt: skip
        else:  # a snapshot without setpriv: the user at once (no capabilities either)
            become = ["-S", user, "-G", user, "--"]
        command = [
            *self._join(running.cgroup.procs_files(exec_dir)),
            *self._drop_privileges(running.spec.uid),
            "nsenter", f"--user=/proc/self/fd/{running.userns_fd}", "-t", str(running.init_pid),
            "-m", "-p", "-n", "-u", "-i", "-C", "-r", "-w", *become,
            *inner, *argv,
        ]  # fmt: skip
        master: int | None = None
        reader: asyncio.StreamReader | None = None
        transport: asyncio.ReadTransport | None = None
        out_file: io.FileIO | None = None
        out_r, out_w = os.pipe() if not pty else (-1, -1)
        try:
            if pty:
                master, slave = os.openpty()
                try:
                    process = await self.spawner.start(
                        command,
                        stdin=slave,
                        stdout=slave,
                        stderr=slave,
                        pass_fds=(running.userns_fd, *pass_fds),
                        env={"PATH": HOST_PATH},
                        start_new_session=True,
                    )
                finally:
                    os.close(slave)
            else:
                # Our own pipe rather than PIPE: background processes may keep its write
                # end open after the command exits, and we must be able to stop reading.
                try:
                    process = await self.spawner.start(
                        command,
                        stdin_pipe=stdin,
                        **({} if stdin else {"stdin": subprocess.DEVNULL}),
                        stdout=out_w,
                        stderr=subprocess.STDOUT,
                        pass_fds=(running.userns_fd, *pass_fds),
                        env={"PATH": HOST_PATH},
                        start_new_session=True,
                    )
                finally:
                    os.close(out_w)
                loop = asyncio.get_running_loop()
                reader = asyncio.StreamReader(limit=1 << 20)
                # From here the file object owns out_r: closing the number again by hand
                # could close a descriptor that has been given the same number since.
                out_file = os.fdopen(out_r, "rb", 0)
                transport, _ = await loop.connect_read_pipe(
                    lambda: asyncio.StreamReaderProtocol(reader), out_file
                )
        except OSError as error:
            if master is not None:
                os.close(master)
            if transport is None:
                if out_file is not None:
                    out_file.close()
                elif out_r >= 0:
                    os.close(out_r)
            running.cgroup.remove_exec_dir(exec_dir)
            raise RuntimeError_(f"could not start a process in the sandbox: {error}") from error
        return SandboxProcess(process, running.cgroup, exec_dir, master, reader, transport)

    def sweep(self) -> None:
        """Remove exec cgroups that have emptied since their exec returned."""
        for running in self.running.values():
            running.cgroup.sweep_exec_dirs()
