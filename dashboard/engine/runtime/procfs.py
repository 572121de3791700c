"""lxcfs: the /proc files that tell a sandbox its own memory, CPUs and uptime.

Without it, ``free``, ``top`` and ``/proc/meminfo`` inside a sandbox show the host's
memory and cores. lxcfs (a FUSE file system made for containers) answers each read
of its ``proc/meminfo``, ``proc/cpuinfo``, ``proc/stat``, ``proc/uptime``… with the
values of the reading process's cgroups; bubblewrap binds those files over the
sandbox's ``/proc``. The engine runs one lxcfs per instance under its run directory
and stops it at shutdown. (``nproc`` counts the CPUs a process may run on, which the
sandbox's cpuset sets: see ``cgroups.py``.)
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import time
from pathlib import Path

from dashboard.engine.runtime.disk import MNT_DETACH, is_mounted, libc

log = logging.getLogger("sandbar.engine")
FILES = ("cpuinfo", "diskstats", "loadavg", "meminfo", "stat", "swaps", "uptime")
START_TIMEOUT = 5.0


class Lxcfs:
    """One lxcfs process and its mount point."""

    def __init__(self, mount_point: Path) -> None:
        self.mount_point = mount_point
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> bool:
        """Mount it (False, with a warning, when it does not come up)."""
        binary = shutil.which("lxcfs")
        if binary is None:
            return False
        self.stop()  # one left by an engine that died
        self.mount_point.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--foreground", "--enable-loadavg",
             "--pidfile", str(self.mount_point.with_suffix(".pid")), str(self.mount_point)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.process.poll() is None:
            if (self.mount_point / "proc" / "meminfo").exists():
                return True
            time.sleep(0.02)
        reason = b""
        if self.process.poll() is not None and self.process.stderr is not None:
            reason = self.process.stderr.read()
        log.warning("lxcfs did not start; sandboxes see the host's /proc: %s", reason.decode())
        self.stop()
        return False

    def bwrap_args(self) -> list[str]:
        """Binds of lxcfs's files over the sandbox's /proc (after ``--proc``)."""
        args: list[str] = []
        for name in FILES:
            source = self.mount_point / "proc" / name
            args += ["--ro-bind-try", str(source), f"/proc/{name}"]
        return args

    def stop(self) -> None:
        """Unmount and end the process (idempotent)."""
        if is_mounted(self.mount_point):
            libc.umount2(str(self.mount_point).encode(), MNT_DETACH)
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None
        with contextlib.suppress(OSError):
            self.mount_point.rmdir()
