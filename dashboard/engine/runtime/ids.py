"""Host uids for sandboxes, and the id-mapped mounts that let them share volumes.

Every sandbox runs as a host uid of its own, taken from the engine's range when the
sandbox is created and given back when it is deleted, so two sandboxes can never
signal, trace or read each other's processes and files through a shared uid.

Volumes are shared, though. Their files are stored on disk as the range's first uid
(which no sandbox runs as), and each sandbox sees them through an *id-mapped* bind
mount that shows that owner as the sandbox's own uid: a file one sandbox writes in a
volume belongs, for every other sandbox that mounts it, to that sandbox's own user.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from dashboard.engine.runtime.disk import libc

# Linux's mount API (the same numbers on every architecture since 5.x).
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_IDMAP = 0x00100000


class UidRangeFull(RuntimeError):
    """Every uid of the range belongs to a sandbox."""


@dataclass(frozen=True)
class UidRange:
    """``first`` owns shared files on disk; sandboxes run as ``first + 1`` onwards.

    Each sandbox also has a second uid, ``count`` further on, for root inside it.
    """

    first: int
    count: int

    @property
    def shared_owner(self) -> int:
        """The on-disk owner of volume files and snapshot homes."""
        return self.first

    def root_of(self, uid: int) -> int:
        """The host uid that stands for root inside the sandbox that runs as ``uid``."""
        return uid + self.count

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, int) and self.first < uid <= self.first + self.count

    def allocate(self, taken: Collection[int]) -> int:
        """The lowest uid of the range that nothing holds."""
        for uid in range(self.first + 1, self.first + self.count + 1):
            if uid not in taken:
                return uid
        raise UidRangeFull(
            f"all {self.count} sandbox uids are in use; delete sandboxes or raise "
            "SANDBAR_SANDBOX_UID_COUNT"
        )


RANGES = Path("/run/sandbar/uid-ranges")


class UidRangeTaken(RuntimeError):
    """Another running engine gives its sandboxes uids of this range."""


def claim(uids: UidRange, owner: str, registry: Path = RANGES) -> int:
    """Hold ``uids`` for this engine as long as the returned descriptor stays open.

    Two engines on one machine whose ranges overlap would hand the same host uid to
    two sandboxes (which could then signal each other), and each engine's egress
    rules, matched by uid, would also filter the other's sandboxes. Each running
    engine holds a lock on a file named after its range; a file nobody holds is left
    by an engine that is gone and is removed.
    """
    registry.mkdir(parents=True, exist_ok=True)
    last = uids.first + 2 * uids.count
    for entry in registry.glob("*-*"):
        first_text, _, last_text = entry.name.partition("-")
        if not (first_text.isdigit() and last_text.isdigit()):
            continue
        other_first, other_last = int(first_text), int(last_text)
        if other_last < uids.first or last < other_first:
            continue
        with contextlib.suppress(FileNotFoundError), open(entry, "r+") as held:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UidRangeTaken(
                    f"host uids {uids.first}-{last} overlap {other_first}-{other_last}, used by "
                    f"the engine of {held.read().strip() or 'another data directory'}; give "
                    "each engine its own range (SANDBAR_SANDBOX_UID, SANDBAR_SANDBOX_UID_COUNT)"
                ) from None
            entry.unlink()  # its engine is gone
    fd = os.open(registry / f"{uids.first}-{last}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.write(fd, owner.encode())
    return fd


def release(fd: int, uids: UidRange, registry: Path = RANGES) -> None:
    """Give the range back (the file goes, then the lock)."""
    with contextlib.suppress(FileNotFoundError):
        (registry / f"{uids.first}-{uids.first + 2 * uids.count}").unlink()
    os.close(fd)


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(result: int, what: str) -> int:
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")
    return result


async def mapping_userns(on_disk: int, host: int) -> int:
    """A user namespace mapping id ``on_disk`` to host id ``host`` (uid and gid).

    Used only as the id map of mounts, never entered: a short-lived process creates
    it, the engine writes its maps as root, keeps a handle and lets the process go.
    """
    process = await asyncio.create_subprocess_exec(
        "unshare", "--user", "--", "/bin/sh", "-c", "echo ready; exec cat",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    try:
        if await asyncio.wait_for(process.stdout.readline(), 5.0) != b"ready\n":
            raise OSError("could not create a user namespace for an id-mapped mount")
        for name in ("uid_map", "gid_map"):
            _write(f"/proc/{process.pid}/{name}", f"{on_disk} {host} 1\n")
        return os.open(f"/proc/{process.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        process.stdin.close()
        if process.returncode is None:
            process.kill()
        await process.wait()


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())  # a /proc map takes one write
    finally:
        os.close(fd)


def idmapped_bind(source_fd: int, target: str, userns_fd: int) -> None:
    """Bind ``source_fd``'s directory at ``target``, its ids seen through ``userns_fd``."""
    tree = _check(
        libc.syscall(
            SYS_OPEN_TREE, source_fd, b"", AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
        ),
        "open_tree",
    )
    try:
        attr = _MountAttr(attr_set=MOUNT_ATTR_IDMAP, userns_fd=userns_fd)
        _check(
            libc.syscall(
                SYS_MOUNT_SETATTR,
                tree,
                b"",
                AT_EMPTY_PATH,
                ctypes.byref(attr),
                ctypes.sizeof(attr),
            ),
            "id-mapping a volume (mount_setattr)",
        )
        _check(
            libc.syscall(
                SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, target.encode(), MOVE_MOUNT_F_EMPTY_PATH
            ),
            "move_mount",
        )
    finally:
        os.close(tree)
