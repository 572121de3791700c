"""A sandbox's root filesystem from a snapshot: the snapshot read-only, an overlay on top.

The snapshot's directory (for default sandboxes, the engine's Debian image) is the
overlay's lower layer, shared by every sandbox made from it; each sandbox's upper layer
lives on its own disk, so its writes count against its disk size and survive stop and
start. bwrap 0.8 has no ``--overlay``, so the engine mounts the overlay as root and
hands bubblewrap the merged directory.

A snapshot need not be a whole distribution: what it lacks of ``/usr``, ``/bin``,
``/lib``… comes read-only from the host, and without an ``etc/passwd`` of its own it
gets the engine's generated ``/etc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import stat
from pathlib import Path

from dashboard.engine.runtime.disk import MS_NODEV, MS_NOSUID, DiskError, is_mounted, libc
from dashboard.engine.runtime.mounts import open_beneath

MNT_DETACH = 2
# Directories bwrap mounts over in every sandbox; they must exist in the merged tree
# before bubblewrap (unprivileged) starts, since it cannot create them there itself.
MOUNT_POINTS = ("proc", "dev", "tmp", "home/daytona", "etc", "root", "var/tmp")


def is_full_root(rootfs: Path) -> bool:
    """Whether the snapshot brings its own system (a shell at /bin/sh or /usr/bin/sh)."""
    return any(os.path.lexists(rootfs / p) for p in ("usr/bin/sh", "bin/sh")) and os.path.lexists(
        rootfs / "usr"
    )


def has_own_etc(rootfs: Path) -> bool:
    """Whether the snapshot brings its own /etc (with a passwd file)."""
    return (rootfs / "etc" / "passwd").is_file() and not (rootfs / "etc").is_symlink()


class RootLayer:
    """The overlay of one sandbox: snapshot below, the sandbox's disk above."""

    def __init__(self, lower: Path, disk_mount: Path, merged: Path) -> None:
        self.lower = lower
        self.upper = disk_mount / "layer" / "upper"
        self.work = disk_mount / "layer" / "work"
        self.merged = merged
        # Where the disk kept home before default sandboxes ran on an image of their own.
        self.disk_home = disk_mount / "home"

    @classmethod
    def beside(cls, disk_mount: Path, lower: str | None = None) -> RootLayer:
        """The layer of the disk mounted at ``disk_mount``, its root mounted next to it.

        Named after the disk's mount point rather than the sandbox: a sandbox taken from
        the warm pool keeps the pool's mount points (a mount point cannot be renamed).
        """
        merged = disk_mount.with_name(f"{disk_mount.name}.root")
        return cls(Path(lower or "/nonexistent"), disk_mount, merged)

    async def mount(
        self,
        owner_uid: int,
        extra_points: tuple[str, ...] = (),
        symlinks: tuple[tuple[str, str], ...] = (),
        own_etc: bool = False,
    ) -> None:
        """Mount the overlay (idempotent) and create the mount points and symlinks bwrap needs."""
        if not self.lower.is_dir():
            raise DiskError(f"the snapshot's files are missing ({self.lower})")
        for directory in (self.upper, self.work):
            directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.upper, 0o755)  # noqa: S103 -- the root directory the sandbox sees
        self.merged.mkdir(parents=True, exist_ok=True)
        # Before the first mount the sandbox has no home of its own in its layer yet.
        first = not (self.upper / "home" / "daytona").exists()
        if first and not is_mounted(self.merged):
            _adopt_disk_home(self.disk_home, self.upper)
        if not is_mounted(self.merged):
            await asyncio.to_thread(self._mount_overlay)
        for point in (*MOUNT_POINTS, *extra_points):
            # Sandbox-written content may hold symlinks: never follow them as root.
            with contextlib.suppress(OSError):
                os.close(open_beneath(str(self.merged), point, owner_uid))
        # The sandbox user owns its home even when the snapshot's files say otherwise:
        # each sandbox runs as a host uid of its own, which no snapshot can know.
        home = open_beneath(str(self.merged), "home/daytona", owner_uid)
        try:
            os.chown(f"/proc/self/fd/{home}", owner_uid, owner_uid)
            if first:  # copies the snapshot's home files up once, owned by this sandbox
                await asyncio.to_thread(_own_tree, home, owner_uid)
        finally:
            os.close(home)
        if own_etc:
            _plain_resolv_conf(self.merged)
        for target, name in symlinks:
            with contextlib.suppress(FileExistsError):
                os.symlink(target, self.merged / name)

    def _mount_overlay(self) -> None:
        # mount(2) itself rather than mount(8): a warm pool refill, which competes with
        # the creates it serves, spares a process.
        options = f"lowerdir={self.lower},upperdir={self.upper},workdir={self.work}"
        merged = str(self.merged).encode()
        if libc.mount(b"overlay", merged, b"overlay", MS_NOSUID | MS_NODEV, options.encode()):
            error = ctypes.get_errno()
            raise DiskError(f"mounting the snapshot's overlay failed: {os.strerror(error)}")

    def unmount(self) -> None:
        """Unmount the overlay (lazily if something still holds it) and remove its mount point."""
        if is_mounted(self.merged):
            target = str(self.merged).encode()
            if libc.umount2(target, 0) != 0:
                libc.umount2(target, MNT_DETACH)
        with contextlib.suppress(OSError):
            self.merged.rmdir()


def _adopt_disk_home(disk_home: Path, upper: Path) -> None:
    """Move a home kept on the disk itself into the layer, where the sandbox now sees it.

    A default sandbox made before the default image had its home bound from the disk's
    ``home``; on its first start on the image that home becomes the layer's (one rename
    on the same filesystem), so no file is left out of sight.
    """
    try:
        if disk_home.is_symlink() or not any(disk_home.iterdir()):
            return
    except OSError:  # no such directory: nothing to move
        return
    parent = upper / "home"
    if parent.is_symlink():
        return
    parent.mkdir(mode=0o755, exist_ok=True)
    os.rename(disk_home, parent / "daytona")


def _own_tree(directory_fd: int, uid: int) -> None:
    """chown everything below a directory to ``uid``, never following a symlink."""
    for _path, dirs, files, fd in os.fwalk(".", dir_fd=directory_fd):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                os.chown(name, uid, uid, dir_fd=fd, follow_symlinks=False)


def _plain_resolv_conf(merged: Path) -> None:
    """Make etc/resolv.conf a plain file, so the engine's (slirp's DNS) can be bound on it.

    A distribution's resolv.conf is often a symlink into /run; the change lands in the
    sandbox's own upper layer, never in the snapshot.
    """
    etc = open_beneath(str(merged), "etc", 0)
    try:
        try:
            if not stat.S_ISREG(os.lstat("resolv.conf", dir_fd=etc).st_mode):
                os.unlink("resolv.conf", dir_fd=etc)
        except FileNotFoundError:
            pass
        with contextlib.suppress(FileExistsError):
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            os.close(os.open("resolv.conf", flags, 0o644, dir_fd=etc))
    finally:
        os.close(etc)
