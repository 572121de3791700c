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
import errno
import fcntl
import logging
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
MNT_DETACH = 2
MS_NOSUID, MS_NODEV, MS_NOATIME = 0x2, 0x4, 0x400
LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A
LO_FLAGS_AUTOCLEAR = 4
LOOP_MAJOR = 7
FIFREEZE, FITHAW, FICLONE = 0xC0045877, 0xC0045878, 0x40049409
# Sparse: only what sandboxes write takes room on the host (deleted disks are discarded).
POOL_SIZE_GIB = 1024
log = logging.getLogger("sandbar.engine")
_template_locks: dict[Path, asyncio.Lock] = {}


class _LoopInfo64(ctypes.Structure):
    _fields_ = (
        ("lo_device", ctypes.c_uint64),
        ("lo_inode", ctypes.c_uint64),
        ("lo_rdevice", ctypes.c_uint64),
        ("lo_offset", ctypes.c_uint64),
        ("lo_sizelimit", ctypes.c_uint64),
        ("lo_number", ctypes.c_uint32),
        ("lo_encrypt_type", ctypes.c_uint32),
        ("lo_encrypt_key_size", ctypes.c_uint32),
        ("lo_flags", ctypes.c_uint32),
        ("lo_file_name", ctypes.c_uint8 * 64),
        ("lo_crypt_name", ctypes.c_uint8 * 64),
        ("lo_encrypt_key", ctypes.c_uint8 * 32),
        ("lo_init", ctypes.c_uint64 * 2),
    )


class _LoopConfig(ctypes.Structure):
    _fields_ = (
        ("fd", ctypes.c_uint32),
        ("block_size", ctypes.c_uint32),
        ("info", _LoopInfo64),
        ("reserved", ctypes.c_uint64 * 8),
    )


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


def _chown_tree(top: Path, old: int, new: int) -> None:
    """Give ``new`` everything under ``top`` that ``old`` owns (never following links)."""
    for directory, dirs, files in os.walk(top):
        for name in (directory, *(os.path.join(directory, n) for n in (*dirs, *files))):
            stat = os.lstat(name)
            os.chown(
                name,
                new if stat.st_uid == old else -1,
                new if stat.st_gid == old else -1,
                follow_symlinks=False,
            )


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

    async def create(self, size_gib: int, templates: Path | None = None) -> None:
        """Make a sparse, formatted image of ``size_gib``.

        With a ``templates`` directory, one empty image per size is formatted once and
        each new disk is a sparse copy of it (a few MB of metadata), which is several
        times faster than running mkfs for every sandbox.
        """
        self.image.parent.mkdir(parents=True, exist_ok=True)
        if templates is None:
            await format_image(self.image, size_gib)
            return
        template = templates / f"ext4-{size_gib}g.img"
        lock = _template_locks.setdefault(template, asyncio.Lock())
        async with lock:
            if not _exists(template):
                partial = template.with_suffix(".partial")
                await format_image(partial, size_gib)
                os.rename(partial, template)
        await asyncio.to_thread(sparse_copy, template, self.image)

    async def mount(self) -> None:
        """Mount the image (idempotent) and make sure home and tmp exist."""
        self.mount_point.mkdir(parents=True, exist_ok=True)
        if not is_mounted(self.mount_point):
            await asyncio.to_thread(loop_mount, self.image, self.mount_point)
        if self.home.is_dir() and (previous := self.home.stat().st_uid) != self.owner_uid:
            # A disk made when the sandbox ran as another uid (engines before per-sandbox
            # uids shared one): hand its files over, or its user could not write them.
            await asyncio.to_thread(_chown_tree, self.mount_point, previous, self.owner_uid)
        for directory, mode in ((self.home, 0o755), (self.tmp, 0o1777)):
            directory.mkdir(exist_ok=True)
            os.chown(directory, self.owner_uid, self.owner_uid)
            os.chmod(directory, mode)

    def unmount(self) -> None:
        """Unmount (the loop device detaches itself); lazily if something still holds it."""
        if not is_mounted(self.mount_point):
            return
        target = str(self.mount_point).encode()
        if libc.umount2(target, 0) != 0:
            libc.umount2(target, MNT_DETACH)

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


async def format_image(image: Path, size_gib: int) -> None:
    """Create a sparse file of ``size_gib`` and make an ext4 filesystem in it."""
    _set_size(image, size_gib << 30)
    # -m 0: no blocks reserved for root, so the engine (root) hits the same limit as
    # the sandbox; lazy init keeps formatting in the milliseconds.
    await _run(
        "mkfs.ext4", "-q", "-F", "-m", "0",
        "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
        "-L", "sandbar", str(image),
    )  # fmt: skip


def sparse_copy(source: Path, destination: Path) -> None:
    """Copy only the data extents of ``source``; holes stay holes."""
    size = source.stat().st_size
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            offset = 0
            while offset < size:
                try:
                    start = os.lseek(src, offset, os.SEEK_DATA)
                except OSError as error:
                    if error.errno == errno.ENXIO:  # no data past offset
                        break
                    raise
                end = os.lseek(src, start, os.SEEK_HOLE)
                position = start
                while position < end:
                    copied = os.copy_file_range(src, dst, end - position, position, position)
                    if copied == 0:
                        break
                    position += copied
                offset = end
            os.ftruncate(dst, size)
        except BaseException:
            os.close(dst)
            destination.unlink(missing_ok=True)
            raise
        os.close(dst)
    finally:
        os.close(src)


def loop_mount(
    image: Path, mount_point: Path, fstype: bytes = b"ext4", options: bytes | None = None
) -> None:
    """Attach ``image`` to a free loop device and mount it, without running mount(8).

    The device is configured to detach itself when the filesystem is unmounted.
    """
    control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    image_fd = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        for _attempt in range(20):
            number = fcntl.ioctl(control, LOOP_CTL_GET_FREE)
            device = f"/dev/loop{number}"
            if not os.path.exists(device):  # a /dev without devtmpfs (some containers)
                with contextlib.suppress(FileExistsError):
                    os.mknod(device, stat.S_IFBLK | 0o660, os.makedev(LOOP_MAJOR, number))
            loop_fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
            try:
                config = _LoopConfig(fd=image_fd)
                config.info.lo_flags = LO_FLAGS_AUTOCLEAR
                try:
                    fcntl.ioctl(loop_fd, LOOP_CONFIGURE, config)
                except OSError as error:
                    if error.errno == errno.EBUSY:  # another process took it first
                        continue
                    raise DiskError(f"could not attach {image} to {device}: {error}") from error
                flags = MS_NOSUID | MS_NODEV | MS_NOATIME
                target = str(mount_point).encode()
                if libc.mount(device.encode(), target, fstype, flags, options):
                    number = ctypes.get_errno()
                    raise DiskError(f"mounting {image} failed: {os.strerror(number)}")
                return
            finally:
                # The mount holds the device now; with autoclear, closing our handle
                # after a failed mount detaches it.
                os.close(loop_fd)
        raise DiskError("no free loop device")
    finally:
        os.close(image_fd)
        os.close(control)


def _exists(path: Path) -> bool:
    """Whether ``path`` exists, creating its parent directory on the way (cheap, local)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.exists()


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


def clone_file(source: Path, destination: Path) -> bool:
    """Copy ``source`` to a new ``destination``: a reflink (shared blocks, copy-on-write)
    where the filesystem can, else a sparse copy. Returns whether it was a reflink."""
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.ioctl(dst, FICLONE, src)
        except OSError as error:
            os.close(dst)
            destination.unlink(missing_ok=True)
            if error.errno not in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY):
                raise
        else:
            os.close(dst)
            return True
    finally:
        os.close(src)
    sparse_copy(source, destination)
    return False


def clone_while_frozen(disk: Disk, destination: Path) -> bool:
    """Clone a mounted disk's image at one instant: its filesystem is frozen (flushed,
    writers held) for the copy, so the clone is consistent although the sandbox runs.

    A reflink takes milliseconds; the fallback copy holds the sandbox's writers for as
    long as it takes.
    """
    fd = os.open(disk.mount_point, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.ioctl(fd, FIFREEZE, 0)
        except OSError as error:
            raise DiskError(f"could not freeze the sandbox's disk: {error.strerror}") from None
        try:
            return clone_file(disk.image, destination)
        finally:
            fcntl.ioctl(fd, FITHAW, 0)
    finally:
        os.close(fd)


class DiskPool:
    """An XFS filesystem (a sparse image, loop-mounted) that holds the sandboxes' disk
    images, so that a disk can be cloned copy-on-write (a fork) in milliseconds.

    ext4, the usual host filesystem, cannot share blocks between files; XFS can. Without
    ``mkfs.xfs`` the engine keeps disks beside its database and clones by copying.
    """

    def __init__(self, image: Path, mount_point: Path) -> None:
        self.image = image
        self.mount_point = mount_point

    def mount(self, *, holds_disks: bool = True) -> bool:
        """Mount the pool, making it first if there is none; False when this host cannot
        make one (disks then go beside the database, which is designed).

        A pool that exists and ``holds_disks`` (sandboxes' disks): failing to mount it
        raises :class:`DiskError` rather than letting those sandboxes look diskless. One
        that holds none is set aside (renamed, not deleted) and a new one made.
        """
        if self.image.exists():
            try:
                self._mount()
            except (OSError, DiskError) as error:
                if holds_disks:
                    raise DiskError(
                        f"the disk pool {self.image} could not be mounted at "
                        f"{self.mount_point}: {error}. The sandboxes' disks are in it, so "
                        "the engine will not start without it"
                    ) from error
                aside = self.image.with_name(f"{self.image.name}.unmountable")
                os.replace(self.image, aside)
                log.warning(
                    "the disk pool %s could not be mounted (%s); no sandbox's disk is in "
                    "it, so it was moved to %s (delete it when done) and a new one is made",
                    self.image, error, aside,
                )  # fmt: skip
            else:
                return True
        mkfs = shutil.which("mkfs.xfs")
        if mkfs is None:
            log.warning("mkfs.xfs is missing (xfsprogs): forks copy sandbox disks in full")
            return False
        try:
            self._format(mkfs)
            self._mount()
        except (OSError, DiskError, subprocess.CalledProcessError) as error:
            # A pool made just now holds nothing yet: drop it, so that the next start
            # tries again rather than refusing a pool that never held a disk.
            self.image.unlink(missing_ok=True)
            log.warning(
                "the disk pool %s could not be made or mounted (%s): new sandboxes' disks "
                "go to plain files beside the database and forks copy them in full",
                self.image, error,
            )  # fmt: skip
            return False
        return True

    def _mount(self) -> None:
        self.mount_point.mkdir(parents=True, exist_ok=True)
        os.chmod(self.mount_point, 0o700)
        if not is_mounted(self.mount_point):
            self._wait_released()
            loop_mount(self.image, self.mount_point, b"xfs", b"discard")

    def _wait_released(self, seconds: float = 15.0) -> None:
        """Wait for a crashed engine's pool, lazily unmounted, to let go of the image.

        Mounting the image again while that filesystem lives would run two XFS instances
        on one file; XFS refuses it anyway (a duplicate UUID), so wait a little first.
        """
        deadline = time.monotonic() + seconds
        while self._attached() and time.monotonic() < deadline:
            time.sleep(0.1)

    def _attached(self) -> bool:
        target = str(self.image.resolve())
        for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
            with contextlib.suppress(OSError):
                if backing.read_text().strip() == target:
                    return True
        return False

    def _format(self, mkfs: str) -> None:
        partial = self.image.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        _set_size(partial, POOL_SIZE_GIB << 30)
        # -K: no discard of the sparse file; a small log keeps the image small.
        subprocess.run(
            [mkfs, "-q", "-K", "-m", "reflink=1", "-l", "size=64m", "-L", "sandbar", str(partial)],
            check=True,
            capture_output=True,
        )
        os.rename(partial, self.image)
