"""Launching a sandbox: bubblewrap, the id map it waits for, the binds it is given.

A started sandbox is a long-lived bubblewrap whose command is a sleeper; everything
else enters its namespaces later (``enter.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from dashboard.engine.runtime import rootfs, seccomp
from dashboard.engine.runtime.cgroups import SandboxCgroup
from dashboard.engine.runtime.commands import (
    HOST_PATH,
    READY_TIMEOUT,
    SANDBOX_OPEN_FILES,
    children,
    drop_privileges,
    join_cgroups,
    kill,
    read_fd,
)
from dashboard.engine.runtime.disk import Disk
from dashboard.engine.runtime.ids import UidRange, mapping_userns
from dashboard.engine.runtime.layers import RootLayer, has_own_etc, is_full_root
from dashboard.engine.runtime.mounts import bind_volumes
from dashboard.engine.runtime.network import UserNetwork
from dashboard.engine.runtime.procfs import Lxcfs
from dashboard.engine.runtime.sandbox import RunningSandbox, RuntimeError_, SandboxSpec

log = logging.getLogger("sandbar.engine")


class Launcher:
    """Starts sandboxes' bubblewrap with the generated /etc in ``etc_dir``."""

    def __init__(self, etc_dir: Path, uids: UidRange, lxcfs: Lxcfs, network: UserNetwork) -> None:
        self.etc_dir = etc_dir
        self.uids = uids
        self.lxcfs = lxcfs
        self.network = network
        # Set up by the runtime (Runtime.setup): the generated /etc's host pieces, the
        # host directories a partial root gets, and whether lxcfs serves /proc.
        self.etc_binds: list[str] = []
        self.host_binds: list[tuple[str, str]] = []
        self.lxcfs_up = False

    async def launch(
        self,
        spec: SandboxSpec,
        disk: Disk,
        cgroup: SandboxCgroup,
        volumes_dir: Path,
        *,
        networked: bool,
    ) -> RunningSandbox:
        """Start the sandbox's bubblewrap in ``cgroup`` (its disk and root mounted) and,
        when ``networked``, its network; a failure kills what was started."""
        fds: list[int] = []
        try:
            etc_fd = os.open(self.etc_dir, os.O_PATH | os.O_DIRECTORY)
            fds.append(etc_fd)
            home_fd = os.open(disk.home, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
            fds.append(home_fd)
            tmp_fd = os.open(disk.tmp, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
            fds.append(tmp_fd)
            sources = await self._bind_volumes(spec, volumes_dir)
            volume_binds = [(src, m.target) for src, m in zip(sources, spec.mounts, strict=True)]
            overlay_fd: int | None = None
            if spec.rootfs is not None:
                overlay_fd = os.open(
                    RootLayer.beside(disk.mount_point).merged,
                    os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW,
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
                *join_cgroups(cgroup.procs_files(), open_files=SANDBOX_OPEN_FILES),
                *drop_privileges(spec.uid),
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
            kill(init)
            raise
        finally:
            os.close(info_r)
            os.close(block_w)
        # The network helper starts only once bwrap has finished: both would configure
        # the loopback interface, and bwrap fails when slirp4netns got there first.
        if line == b"ready\n" and not spec.network_block_all and networked:
            try:
                network = await self.network.start(int(children(init.pid)[0]), cgroup, spec)
            except (OSError, IndexError, RuntimeError_) as error:
                line, failure = b"", str(error)
        if line != b"ready\n":
            kill(init)
            stderr = await init.stderr.read()
            await init.wait()
            reason = (
                failure or stderr.decode(errors="replace").strip() or "bubblewrap did not start"
            )
            raise RuntimeError_(reason)
        init_pid = int(children(init.pid)[0])
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
            chunk = await read_fd(info_r, 4096, READY_TIMEOUT)
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
            for kind, name in self.host_binds:
                if kind == "bind":
                    args += ["--ro-bind", f"/{name}", f"/{name}"]
                elif root_fd is None:  # in an overlay root the engine made the link
                    args += ["--symlink", kind.removeprefix("symlink:"), f"/{name}"]
        if lower is None or not has_own_etc(lower):
            args += ["--ro-bind-fd", str(etc_fd), "/etc"]
            for name in self.etc_binds:
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        else:  # the snapshot's /etc, but DNS through slirp4netns as everywhere
            args += ["--ro-bind", str(self.etc_dir / "resolv.conf"), "/etc/resolv.conf"]
        # /tmp, /dev/shm and /var/tmp here are paths inside the sandbox, not the host's.
        args += [
            "--proc", "/proc", *(self.lxcfs.bwrap_args() if self.lxcfs_up else ()),
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

    async def _bind_volumes(self, spec: SandboxSpec, volumes_dir: Path) -> list[str]:
        """Bind the volumes for bubblewrap, their shared owner shown as the sandbox's uid."""
        if not spec.mounts:
            return bind_volumes(volumes_dir, (), self.uids.shared_owner)
        userns_fd = await mapping_userns(self.uids.shared_owner, spec.uid)
        try:
            return bind_volumes(volumes_dir, spec.mounts, self.uids.shared_owner, userns_fd)
        finally:
            os.close(userns_fd)
