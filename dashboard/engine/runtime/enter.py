"""Entering a running sandbox: a process in its namespaces, cgroups and seccomp filter.

A plain command is handed to the sandbox's spare process when one is waiting: a
process already inside, made ahead of time, that only needs its command (a pipe write
instead of the six execs of nsenter, setpriv and env).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import subprocess
from collections.abc import Mapping, Sequence

from dashboard.engine.runtime import rootfs
from dashboard.engine.runtime.commands import (
    HOST_PATH,
    SANDBOX_OPEN_FILES,
    drop_privileges,
    join_cgroups,
)
from dashboard.engine.runtime.sandbox import RunningSandbox, RuntimeError_
from dashboard.engine.runtime.sandbox_process import SandboxProcess, Spare
from dashboard.engine.runtime.spawn import Spawner

log = logging.getLogger("sandbar.engine")
# Run by a spare process: read NUL-separated cwd, environment and argv from the pipe
# named by $0 (nothing there is ever parsed by a shell), close it, become the command.
SPARE_SCRIPT = 'mapfile -d "" -u "$0" a && eval "exec $0<&-" && exec /usr/bin/env -i -C "${a[@]}"'
SPARE_MAX_MESSAGE = 60_000  # stays below a pipe's buffer, so writing never blocks
SPARE_DELAY = 0.2  # seconds after a start before the first spare is made


class Entrance:
    """Starts processes inside running sandboxes, through ``spawner``."""

    def __init__(self, spawner: Spawner) -> None:
        self.spawner = spawner

    async def spawn(
        self,
        running: RunningSandbox,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str = rootfs.HOME,
        pty: bool = False,
        stdin: bool = False,
        pass_fds: Sequence[int] = (),
    ) -> SandboxProcess:
        """Start ``argv`` inside ``running`` (see :meth:`Runtime.spawn`)."""
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
            self.prepare_spare(running)
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
            self.prepare_spare(running)
            return None
        os.close(spare.control)
        if not stdin and spare.process.stdin is not None:
            spare.process.stdin.close()
        # The next spare is made once this command is over, not competing with it.
        spare.process.on_exit = lambda: self.prepare_spare(running)
        return spare.process

    def prepare_spare(self, running: RunningSandbox, delay: float = 0.0) -> None:
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
        spare = Spare(process, write_end)
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
            *join_cgroups(running.cgroup.procs_files(exec_dir), open_files=SANDBOX_OPEN_FILES),
            *drop_privileges(running.spec.uid),
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

    async def close(self, running: RunningSandbox) -> None:
        """Make no more spares for a sandbox that is stopping, and kill the waiting one."""
        running.closed = True
        if running.spare_task is not None:
            running.spare_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running.spare_task
        if running.spare is not None:
            running.spare.discard()
            running.spare = None
