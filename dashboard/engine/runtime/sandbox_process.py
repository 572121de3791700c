"""A process started inside a sandbox, and the spare one waiting to become the next."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dashboard.engine.runtime.cgroups import SandboxCgroup
from dashboard.engine.runtime.spawn import Child

# Discarded spares being waited for (a task with no reference may be collected early).
_reaping: set[asyncio.Task[int]] = set()


@dataclass
class Spare:
    """A command-in-waiting: spawned through the full namespace dance ahead of time."""

    process: SandboxProcess
    control: int  # write end of the pipe the spare reads its command from

    def discard(self) -> None:
        """Kill it and free its handles; its exit is collected in the background (a
        process never waited for stays a zombie, its pipe open, until collected)."""
        with contextlib.suppress(OSError):
            os.close(self.control)
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.kill()
        self.process.release()
        reaping = asyncio.get_running_loop().create_task(self.process.process.wait())
        _reaping.add(reaping)
        reaping.add_done_callback(_reaping.discard)


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
