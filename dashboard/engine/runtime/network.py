"""Sandboxes' outbound network: slirp4netns in user mode, behind the egress rules.

The rules (``egress.py``) are in place before slirp4netns starts, so no packet leaves a
sandbox unfiltered; slirp4netns itself runs as the sandbox's uid, like bubblewrap.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os

from dashboard.engine.runtime.cgroups import SandboxCgroup
from dashboard.engine.runtime.commands import (
    HOST_PATH,
    READY_TIMEOUT,
    drop_privileges,
    join_cgroups,
    kill,
    read_fd,
)
from dashboard.engine.runtime.egress import Egress, EgressError
from dashboard.engine.runtime.sandbox import RuntimeError_, SandboxSpec

log = logging.getLogger("sandbar.engine")
NS_GET_USERNS = 0xB701  # ioctl: the user namespace that owns a namespace


class UserNetwork:
    """Starts a sandbox's slirp4netns (``slirp``: its path, None when missing)."""

    def __init__(self, egress: Egress, slirp: str | None) -> None:
        self.egress = egress
        self.slirp = slirp

    async def start(
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
            await self.forget(uid)
            raise

    async def forget(self, uid: int) -> None:
        """Remove the egress rules of ``uid`` (a failure is only logged)."""
        try:
            await self.egress.remove(uid)
        except EgressError as error:
            log.warning("could not remove the egress rules of uid %s: %s", uid, error)

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
                *join_cgroups(cgroup.procs_files()),
                *drop_privileges(uid),
                self.slirp or "slirp4netns",
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
            flag = await read_fd(ready_r, 1, READY_TIMEOUT)
        finally:
            os.close(ready_r)
        if flag != b"1":
            os.close(exit_w)
            kill(process)
            await process.wait()
            raise RuntimeError_("the user-mode network (slirp4netns) did not come up")
        return process, exit_w
