"""What the runtime knows of one sandbox: its spec, its handles while it runs, its errors."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from dashboard.engine.runtime.cgroups import SandboxCgroup
from dashboard.engine.runtime.commands import children
from dashboard.engine.runtime.disk import Disk
from dashboard.engine.runtime.layers import RootLayer
from dashboard.engine.runtime.mounts import Mount
from dashboard.engine.runtime.sandbox_process import Spare


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
    spare: Spare | None = None
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
            pids.update(int(p) for p in children(self.init_pid))
        if self.network is not None:
            pids.add(self.network.pid)
        return pids
