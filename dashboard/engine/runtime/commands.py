"""Host-side pieces of the runtime's command lines, and the child-process helpers.

Every process the runtime starts (bubblewrap, nsenter, slirp4netns) begins as root on
the host: these prefixes put it into its cgroups and drop it to the sandbox's uid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
from collections.abc import Sequence

HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
READY_TIMEOUT = 10.0
# Written into each cgroup.procs by a tiny shell before it execs the real command, so
# that the command starts inside its cgroups (no window in which it could escape).
JOIN_CGROUPS = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'

# The soft limit on open files the engine started with. The engine raises its own
# (server.raise_open_files_limit, after importing this module); sandbox processes start
# with this one, as they would on a host where nothing raised it.
SANDBOX_OPEN_FILES = resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def join_cgroups(procs_files: Sequence[str], *, open_files: int | None = None) -> list[str]:
    """The command prefix that puts what follows into the cgroups of ``procs_files``,
    with ``open_files`` as its soft limit on open descriptors when given."""
    script = JOIN_CGROUPS
    if open_files is not None:
        # Never above the hard limit now (an operator may have lowered it since the
        # engine started): the shell would refuse it and no process could start.
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and (
            open_files == resource.RLIM_INFINITY or open_files > hard
        ):
            open_files = hard
        limit = "unlimited" if open_files == resource.RLIM_INFINITY else str(open_files)
        script = f"ulimit -S -n {limit} || exit 125; {script}"
    return ["/bin/sh", "-c", script, "sh", *procs_files, "--"]


def drop_privileges(uid: int) -> list[str]:
    """Become ``uid``: no groups, no capabilities (bounding set too), no_new_privs."""
    return [
        "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
        "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
    ]  # fmt: skip


def kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL a child without Popen.send_signal, whose poll() would reap it behind
    asyncio's back (asyncio then logs "exit status already read")."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)


async def read_fd(fd: int, size: int, limit: float) -> bytes:
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


def children(pid: int) -> list[str]:
    """The host pids of ``pid``'s children."""
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return handle.read().split()
