"""Starting processes that enter a sandbox, already under its seccomp filter.

A seccomp filter belongs to a thread and is inherited by every process that thread
starts. So the engine keeps one thread whose only work is starting the processes that
enter sandboxes, with the filter (and no_new_privs) loaded on it: each child is
filtered from its first instruction, and Python's process creation keeps its fast
path (``vfork``) instead of forking the whole engine to run a ``preexec_fn``. The
rest of the engine (mounts, bubblewrap, slirp4netns) runs on other threads, unfiltered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from dashboard.engine.runtime import seccomp


class Child:
    """A process started by :class:`Spawner`: what the runtime needs of it."""

    def __init__(self, popen: subprocess.Popen[bytes], stdin: asyncio.StreamWriter | None) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.stdin = stdin
        self._exited: asyncio.Future[int] | None = None

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited (negative: killed by that signal)."""
        return self._popen.poll()

    async def wait(self) -> int:
        """Wait for the exit without blocking the loop (a pidfd says when)."""
        if self._exited is None:
            loop = asyncio.get_running_loop()
            self._exited = loop.create_future()
            if self._popen.poll() is not None:
                self._exited.set_result(self._popen.returncode)
            else:
                self._watch(loop, self._exited)
        return await asyncio.shield(self._exited)

    def _watch(self, loop: asyncio.AbstractEventLoop, exited: asyncio.Future[int]) -> None:
        pidfd = os.pidfd_open(self.pid)

        def on_exit() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            if not exited.done():
                exited.set_result(self._popen.wait())

        loop.add_reader(pidfd, on_exit)


class Spawner:
    """The one thread that starts sandbox processes, under the sandboxes' filter."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        seccomp.load_on_this_thread()
        while (job := self._jobs.get()) is not None:
            job()

    async def start(self, argv: list[str], *, stdin_pipe: bool = False, **popen: Any) -> Child:
        """``subprocess.Popen(argv, **popen)`` on the filtered thread; ``stdin_pipe``
        gives the child a pipe to read and the caller its write end as a StreamWriter."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sandbox-spawner", daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[subprocess.Popen[bytes]] = loop.create_future()
        read_end, write_end = os.pipe() if stdin_pipe else (None, None)
        if read_end is not None:
            popen["stdin"] = read_end

        def job() -> None:
            try:
                child = subprocess.Popen(argv, **popen)
            except BaseException as error:  # handed to the waiting coroutine
                loop.call_soon_threadsafe(_settle, done, None, error)
            else:
                loop.call_soon_threadsafe(_settle, done, child, None)

        self._jobs.put(job)
        try:
            popen_child = await done
        except BaseException:
            if write_end is not None:
                os.close(write_end)
            raise
        finally:
            if read_end is not None:
                os.close(read_end)
        writer = None
        if write_end is not None:
            protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader())
            transport, _ = await loop.connect_write_pipe(
                lambda: protocol, os.fdopen(write_end, "wb", 0)
            )
            writer = asyncio.StreamWriter(transport, protocol, None, loop)
        return Child(popen_child, writer)

    def close(self) -> None:
        """End the thread (idempotent)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=5)
            self._thread = None


def _settle(
    done: asyncio.Future[Any], child: subprocess.Popen[bytes] | None, error: BaseException | None
) -> None:
    if done.cancelled():
        if child is not None:  # nobody will wait for it: do not leave it behind
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            child.wait()
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(child)
