"""A sandbox's persistent, size-limited disk: a sparse ext4 image mounted through a loop device.

The image only takes the space actually written, survives engine and host restarts,
and makes writes past its size fail with ENOSPC inside the sandbox. It is mounted only
while the sandbox runs, so loop devices are used by running sandboxes alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
MNT_DETACH = 2


class DiskError(RuntimeError):
    """Creating, mounting or resizing a sandbox disk failed."""


async def _run(*argv: str, ok: tuple[int, ...] = (0,)) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await process.communicate()
    if process.returncode not in ok:
        message = stderr.decode(errors="replace").strip().splitlines()
        raise DiskError(f"{argv[0]} failed: {message[-1] if message else process.returncode}")


def is_mounted(mount_point: Path) -> bool:
    """Whether something is mounted exactly at ``mount_point``."""
    target = str(mount_point.absolute())
    with open("/proc/self/mountinfo") as mountinfo:
        return any(line.split()[4] == target for line in mountinfo)


class Disk:
    """The image file, its mount point and the directories the sandbox sees."""

    def __init__(self, image: Path, mount_point: Path, owner_uid: int) -> None:
        self.image = image
        self.mount_point = mount_point
        self.owner_uid = owner_uid

    @property
    def home(self) -> Path:
        """Bound at /home/daytona inside."""
        return self.mount_point / "home"

    @property
    def tmp(self) -> Path:
        """Bound at /tmp inside; on the disk so that it counts against the limit."""
        return self.mount_point / "tmp"

    async def create(self, size_gib: int) -> None:
        """Make a sparse image of ``size_gib`` and format it."""
        self.image.parent.mkdir(parents=True, exist_ok=True)
        _set_size(self.image, size_gib << 30)
        # -m 0: no blocks reserved for root, so the engine (root) hits the same limit
        # as the sandbox; lazy init keeps formatting in the milliseconds.
        await _run(
            "mkfs.ext4", "-q", "-F", "-m", "0",
            "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
            "-L", "sandbar", str(self.image),
        )  # fmt: skip

    async def mount(self) -> None:
        """Mount the image (idempotent) and make sure home and tmp exist."""
        self.mount_point.mkdir(parents=True, exist_ok=True)
        if not is_mounted(self.mount_point):
            await _run(
                "mount", "-t", "ext4", "-o", "loop,nodev,nosuid,noatime",
                str(self.image), str(self.mount_point),
            )  # fmt: skip
        for directory, mode in ((self.home, 0o755), (self.tmp, 0o1777)):
            directory.mkdir(exist_ok=True)
            os.chown(directory, self.owner_uid, self.owner_uid)
            os.chmod(directory, mode)

    def unmount(self) -> None:
        """Unmount (the loop device detaches itself); lazily if something still holds it."""
        if not is_mounted(self.mount_point):
            return
        target = str(self.mount_point).encode()
        if _libc.umount2(target, 0) != 0:
            _libc.umount2(target, MNT_DETACH)

    def clear_tmp(self) -> None:
        """Empty /tmp before a start, as a reboot would."""
        if self.tmp.is_dir():
            for entry in os.scandir(self.tmp):
                path = Path(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    _remove_tree(path)
                else:
                    with contextlib.suppress(OSError):
                        path.unlink()

    async def grow(self, size_gib: int) -> None:
        """Grow the (unmounted) filesystem to ``size_gib``."""
        if self.image.stat().st_size >= size_gib << 30:
            return
        _set_size(self.image, size_gib << 30)
        await _run("e2fsck", "-f", "-y", str(self.image), ok=(0, 1))
        await _run("resize2fs", str(self.image), f"{size_gib}G")

    def used_bytes(self) -> int:
        """Space the image takes on the host."""
        try:
            return self.image.stat().st_blocks * 512
        except FileNotFoundError:
            return 0

    def delete(self) -> None:
        """Remove the image and the mount point."""
        self.unmount()
        with contextlib.suppress(FileNotFoundError):
            self.image.unlink()
        with contextlib.suppress(OSError):
            self.mount_point.rmdir()


def _set_size(path: Path, size: int) -> None:
    """Create or extend a sparse file (no data blocks are written)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def _remove_tree(path: Path) -> None:
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(root, name))
        for name in dirs:
            full = os.path.join(root, name)
            with contextlib.suppress(OSError):
                if os.path.islink(full):
                    os.unlink(full)
                else:
                    os.rmdir(full)
    with contextlib.suppress(OSError):
        path.rmdir()
