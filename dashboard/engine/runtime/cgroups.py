"""Per-sandbox cgroups on cgroup v1, v2 or a hybrid of both, detected at run time.

Limits go to v2 when its controllers are there (most current distributions), else to
the v1 memory/cpu/pids hierarchies. The v2 hierarchy, even without controllers, gives
``cgroup.kill`` and ``cgroup.events``, which kill a whole tree at once and tell when
it is empty; each exec gets a child cgroup there so a timeout kills only that exec.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

LIMIT_CONTROLLERS = ("memory", "cpu", "pids")
# cpuset pins a sandbox to as many CPUs as it has, so that nproc and every program that
# sizes itself by sched_getaffinity see its CPUs, not the host's. Used where present.
PIN_CONTROLLER = "cpuset"
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class CgroupLayout:
    """Where the hierarchies are mounted on this host."""

    v1: dict[str, Path]  # controller -> directory that will hold the engine's cgroups
    v2: Path | None  # directory (under the v2 mount) for the engine's cgroups
    v2_limits: bool  # whether memory/cpu/pids limits are set through v2
    v2_pins: bool = False  # whether cpuset is set through v2

    @classmethod
    def detect(cls) -> CgroupLayout:
        """Read the mount table and this process's own cgroups."""
        with open("/proc/self/mountinfo") as mountinfo, open("/proc/self/cgroup") as own:
            return cls.parse(mountinfo.read(), own.read())

    @classmethod
    def parse(cls, mountinfo: str, self_cgroup: str) -> CgroupLayout:
        """Work the layout out from /proc/self/mountinfo and /proc/self/cgroup."""
        v1_mounts: dict[str, Path] = {}
        v2_mount: Path | None = None
        for line in mountinfo.splitlines():
            before, _, after = line.partition(" - ")
            fields = before.split()
            if len(fields) < 5:
                continue
            mount_point = Path(fields[4])
            fstype, _source, options = [*after.split(), "", ""][:3]
            if fstype == "cgroup2" and v2_mount is None:
                v2_mount = mount_point
            elif fstype == "cgroup":
                for option in options.split(","):
                    known = (*LIMIT_CONTROLLERS, PIN_CONTROLLER)
                    if option in known and option not in v1_mounts:
                        v1_mounts[option] = mount_point
        own: dict[str, str] = {}
        for line in self_cgroup.splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                own[controller] = path
        # Nest v1 cgroups under our own (a container's limits then still apply to
        # sandboxes); v2 cgroups go at the root because a cgroup holding processes,
        # like ours, may not delegate controllers to children.
        v1 = {c: m / own.get(c, "/").lstrip("/") for c, m in v1_mounts.items()}
        v2_limits = v2_pins = False
        if v2_mount is not None:
            available = (v2_mount / "cgroup.controllers").read_text().split()
            v2_limits = all(c in available for c in LIMIT_CONTROLLERS)
            v2_pins = v2_limits and PIN_CONTROLLER in available
        if v2_limits:
            v1 = {}
        return cls(v1=v1, v2=v2_mount, v2_limits=v2_limits, v2_pins=v2_pins)


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def _inherit_cpuset(directory: Path) -> None:
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not (directory / name).read_text().strip():
            _write(directory / name, (directory.parent / name).read_text().strip())


def _rmdir_tree(path: Path) -> None:
    """Remove a cgroup directory and its child cgroups, deepest first."""
    if not path.is_dir():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


class CgroupManager:
    """Creates the engine's instance cgroups and one set per sandbox."""

    def __init__(self, instance_id: str, layout: CgroupLayout | None = None) -> None:
        self.layout = layout or CgroupLayout.detect()
        self.name = f"sandbar-{instance_id}"
        self.host_cpus = sorted(os.sched_getaffinity(0))
        self._pinned: dict[str, list[int]] = {}  # sandbox id -> its CPUs

    def pick_cpus(self, sandbox_id: str, count: int) -> list[int]:
        """The ``count`` CPUs fewest sandboxes are pinned to (all of them past the host's)."""
        if count >= len(self.host_cpus):
            chosen = list(self.host_cpus)
        else:
            load = dict.fromkeys(self.host_cpus, 0)
            for other, cpus in self._pinned.items():
                if other != sandbox_id:
                    for cpu in cpus:
                        load[cpu] = load.get(cpu, 0) + 1
            chosen = sorted(sorted(load, key=lambda cpu: (load[cpu], cpu))[:count])
        self._pinned[sandbox_id] = chosen
        return chosen

    def unpin(self, sandbox_id: str) -> None:
        """Forget a stopped sandbox's CPUs."""
        self._pinned.pop(sandbox_id, None)

    def _roots(self) -> list[Path]:
        roots = [base / self.name for base in self.layout.v1.values()]
        if self.layout.v2 is not None:
            roots.append(self.layout.v2 / self.name)
        return roots

    def setup(self) -> None:
        """Create the instance cgroups, clearing any left by an earlier run."""
        self.teardown()
        for root in self._roots():
            root.mkdir(parents=True, exist_ok=True)
        pins = self.layout.v1.get(PIN_CONTROLLER)
        if pins is not None:  # a v1 cpuset starts empty: give it its parent's CPUs
            _inherit_cpuset(pins / self.name)
        if self.layout.v2 is not None and self.layout.v2_limits:
            controllers = (*LIMIT_CONTROLLERS, *([PIN_CONTROLLER] if self.layout.v2_pins else []))
            wanted = " ".join(f"+{c}" for c in controllers)
            enabled = (self.layout.v2 / "cgroup.subtree_control").read_text().split()
            if not all(c in enabled for c in controllers):
                _write(self.layout.v2 / "cgroup.subtree_control", wanted)
            _write(self.layout.v2 / self.name / "cgroup.subtree_control", wanted)

    def teardown(self, wait: float = 5.0) -> None:
        """Kill whatever is left in the instance cgroups, wait (up to ``wait`` seconds)
        for it to be gone, and remove them: what it held open (a disk, so the disk
        pool) is let go before the caller goes on."""
        for root in self._roots():
            if not root.is_dir():
                continue
            left = [SandboxCgroup(self, child.name) for child in root.iterdir() if child.is_dir()]
            for cgroup in left:
                cgroup.kill_now()
            deadline = time.monotonic() + wait
            while any(cgroup.pids() for cgroup in left) and time.monotonic() < deadline:
                time.sleep(0.01)
            _rmdir_tree(root)

    def sandbox(self, sandbox_id: str) -> SandboxCgroup:
        """Return the handle for one sandbox's cgroups (not created yet)."""
        return SandboxCgroup(self, sandbox_id)


@dataclass
class SandboxCgroup:
    """The cgroups of one sandbox: limits, a kill switch and per-exec children."""

    manager: CgroupManager
    sandbox_id: str
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1))
    # Exec cgroups whose exec has not returned yet: empty for a moment before their
    # process joins, so the sweeper must leave them alone.
    _active: set[str] = field(default_factory=set)

    @property
    def v1_dirs(self) -> dict[str, Path]:
        """The v1 directories (controller -> path) when limits live in v1."""
        name = self.manager.name
        return {c: base / name / self.sandbox_id for c, base in self.manager.layout.v1.items()}

    @property
    def v2_dir(self) -> Path | None:
        """The sandbox's directory in the v2 hierarchy, if the host has one."""
        v2 = self.manager.layout.v2
        return None if v2 is None else v2 / self.manager.name / self.sandbox_id

    def create(self, *, cpu: int, memory_gib: int, pids_max: int) -> None:
        """Create the directories and set the limits."""
        for directory in self.v1_dirs.values():
            directory.mkdir(exist_ok=True)
        if PIN_CONTROLLER in self.v1_dirs:
            _inherit_cpuset(self.v1_dirs[PIN_CONTROLLER])
        if self.v2_dir is not None:
            self.v2_dir.mkdir(exist_ok=True)
        self.set_limits(cpu=cpu, memory_gib=memory_gib, pids_max=pids_max)

    def set_limits(self, *, cpu: int, memory_gib: int, pids_max: int) -> None:
        """Apply CPU quota, memory and process-count limits (also on a running sandbox)."""
        memory = memory_gib << 30
        cpus = ",".join(map(str, self.manager.pick_cpus(self.sandbox_id, cpu)))
        if self.manager.layout.v2_pins and self.v2_dir is not None:
            _write(self.v2_dir / "cpuset.cpus", cpus)
        if PIN_CONTROLLER in self.v1_dirs:
            _write(self.v1_dirs[PIN_CONTROLLER] / "cpuset.cpus", cpus)
        if self.manager.layout.v2_limits and self.v2_dir is not None:
            _write(self.v2_dir / "cpu.max", f"{cpu * CPU_PERIOD_US} {CPU_PERIOD_US}")
            _write(self.v2_dir / "memory.max", str(memory))
            if (self.v2_dir / "memory.swap.max").exists():
                _write(self.v2_dir / "memory.swap.max", "0")
            _write(self.v2_dir / "pids.max", str(pids_max))
            return
        dirs = self.v1_dirs
        if "cpu" in dirs:
            _write(dirs["cpu"] / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(dirs["cpu"] / "cpu.cfs_quota_us", str(cpu * CPU_PERIOD_US))
        if "memory" in dirs:
            memsw = dirs["memory"] / "memory.memsw.limit_in_bytes"
            # memsw must stay >= the memory limit, so the order depends on the direction.
            if memsw.exists():
                with contextlib.suppress(OSError):
                    _write(memsw, str(memory))
            _write(dirs["memory"] / "memory.limit_in_bytes", str(memory))
            if memsw.exists():
                _write(memsw, str(memory))
        if "pids" in dirs:
            _write(dirs["pids"] / "pids.max", str(pids_max))

    def procs_files(self, exec_dir: Path | None = None) -> list[str]:
        """The ``cgroup.procs`` files a new sandbox process must be written into."""
        files = [str(d / "cgroup.procs") for d in self.v1_dirs.values()]
        target = exec_dir or self.v2_dir
        if target is not None:
            files.append(str(target / "cgroup.procs"))
        return files

    def new_exec_dir(self) -> Path | None:
        """Create a child cgroup for one exec so that it can be killed on its own."""
        if self.v2_dir is None:
            return None
        directory = self.v2_dir / f"exec-{next(self._counter)}"
        directory.mkdir()
        self._active.add(directory.name)
        return directory

    def pids(self) -> list[int]:
        """Host pids of every process in the sandbox."""
        sources = [self.v2_dir] if self.v2_dir is not None else list(self.v1_dirs.values())[:1]
        found: set[int] = set()
        for source in sources:
            if source is None or not source.is_dir():
                continue
            for procs in source.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    found.update(int(p) for p in procs.read_text().split())
        return sorted(found)

    @staticmethod
    def kill_dir(directory: Path) -> None:
        """Kill every process in one v2 cgroup (recursively)."""
        kill_file = directory / "cgroup.kill"
        if kill_file.exists():
            with contextlib.suppress(OSError):
                _write(kill_file, "1")
            return
        for procs in directory.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                for pid in procs.read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)

    def kill_now(self) -> None:
        """SIGKILL every process of the sandbox at once."""
        if self.v2_dir is not None and self.v2_dir.is_dir():
            self.kill_dir(self.v2_dir)
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    async def wait_empty(self, limit: float = 5.0) -> bool:
        """Wait until no process is left, so the directories can be removed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while self.pids():
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.002)
        return True

    def remove_exec_dir(self, directory: Path | None) -> bool:
        """Remove an exec's cgroup once it is empty; processes it left behind keep it."""
        if directory is None:
            return True
        self._active.discard(directory.name)
        try:
            directory.rmdir()
        except OSError:
            return False
        return True

    def sweep_exec_dirs(self) -> None:
        """Remove exec cgroups whose background processes have all exited."""
        if self.v2_dir is None or not self.v2_dir.is_dir():
            return
        for child in self.v2_dir.iterdir():
            if child.is_dir() and child.name.startswith("exec-") and child.name not in self._active:
                with contextlib.suppress(OSError):
                    child.rmdir()

    async def remove(self, limit: float = 3.0) -> bool:
        """Remove the directories once the kernel lets go of them.

        A process that has exited but is not reaped yet (the sandbox's first process
        is reparented when bubblewrap dies) still pins a v1 cgroup: rmdir fails with
        EBUSY until it is gone, so try again for a moment rather than leave it behind.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while True:
            self.destroy()
            left = [d for d in (*self.v1_dirs.values(), self.v2_dir) if d and d.exists()]
            if not left or loop.time() > deadline:
                return not left
            await asyncio.sleep(0.01)

    def destroy(self) -> None:
        """Remove the (empty) directories."""
        self.manager.unpin(self.sandbox_id)
        for directory in self.v1_dirs.values():
            _rmdir_tree(directory)
        if self.v2_dir is not None:
            _rmdir_tree(self.v2_dir)
