"""Extra directories bound into a sandbox (volumes), opened without following symlinks.

A volume is writable by every sandbox that mounts it, so anything inside it may be a
symlink planted by a sandbox. The engine runs as root: it must never follow such a
link to a host path when it creates a ``subpath`` or opens the directory to bind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dashboard.engine.runtime.disk import libc
from dashboard.engine.runtime.ids import idmapped_bind

MS_BIND = 4096
MNT_DETACH = 2


@dataclass(frozen=True)
class Mount:
    """A host directory (``root`` + ``subpath``) bound read-write at ``target`` inside."""

    root: str
    subpath: str
    target: str


def open_beneath(root: str, subpath: str, owner_uid: int) -> int:
    """Open ``root/subpath`` as an O_PATH fd, creating missing parts owned by ``owner_uid``.

    Every component is opened relative to its parent with O_NOFOLLOW, so a symlink
    anywhere below ``root`` makes this fail with OSError rather than escape.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for part in [p for p in subpath.split("/") if p]:
            if part in (".", ".."):
                raise OSError(f"invalid subpath component {part!r}")
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
                os.chown(part, owner_uid, owner_uid, dir_fd=fd, follow_symlinks=False)
            child = os.open(
                part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
            )
            os.close(fd)
            fd = child
        path_fd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)
    return path_fd


def bind_volumes(
    directory: Path, mounts: Sequence[Mount], owner_uid: int, userns_fd: int | None = None
) -> list[str]:
    """Bind each volume under ``directory`` (which the sandbox uid can traverse).

    bubblewrap resolves its bind sources by path as the unprivileged uid, and the data
    directory may be private, so the engine first binds each volume somewhere public.
    With ``userns_fd`` the binds are id-mapped through it (see ``ids.py``); missing
    subpath directories are created owned by ``owner_uid``, the on-disk owner.
    Returns the paths to hand to bubblewrap, in the order of ``mounts``.
    """
    unbind_volumes(directory)
    if not mounts:
        return []  # nothing to bind: leave no empty directory behind under /run
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o711)  # noqa: S103 -- traverse only
    paths: list[str] = []
    try:
        for index, mount in enumerate(mounts):
            fd = open_beneath(mount.root, mount.subpath, owner_uid)
            try:
                point = directory / str(index)
                point.mkdir()
                source = f"/proc/self/fd/{fd}".encode()
                if userns_fd is not None:
                    idmapped_bind(fd, str(point), userns_fd)
                elif libc.mount(source, str(point).encode(), None, MS_BIND, None) != 0:
                    error = ctypes.get_errno()
                    raise OSError(error, f"binding volume {mount.target}: {os.strerror(error)}")
            finally:
                os.close(fd)
            paths.append(str(point))
    except OSError:
        unbind_volumes(directory)
        raise
    return paths


def unbind_volumes(directory: Path) -> None:
    """Undo :func:`bind_volumes` (idempotent)."""
    if not directory.is_dir():
        return
    for point in directory.iterdir():
        libc.umount2(str(point).encode(), MNT_DETACH)
        with contextlib.suppress(OSError):
            point.rmdir()
    with contextlib.suppress(OSError):
        directory.rmdir()
