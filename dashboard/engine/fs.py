"""File operations on a running sandbox, confined to its root.

Every path is resolved by the kernel with ``openat2(RESOLVE_IN_ROOT)`` against a handle
on the sandbox's own root, so ``..`` and symbolic links (absolute or relative) can never
leave the sandbox, whatever they point at. The operations run with the thread's
filesystem uid and gid switched to the sandbox user: permission checks and the owner of
new files are those of the user inside, and root's override capabilities do not apply.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fnmatch
import os
import posixpath
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, TypeVar

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long
SYS_OPENAT2 = 437  # the same number on every architecture (new-style syscall table)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
MAX_RESULTS = 10_000
MAX_GREP_FILE = 10 << 20
MAX_REPLACE_FILE = 64 << 20  # read whole into the engine's memory, so bounded
T = TypeVar("T")


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


class FsError(Exception):
    """A file operation failed; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def _from_oserror(error: OSError, path: str) -> FsError:
    number = error.errno
    reason = os.strerror(number) if number else str(error)
    if number == errno.ENOENT:
        return FsError(f"{path}: no such file or directory", 404, "FILE_NOT_FOUND")
    if number in (errno.EACCES, errno.EPERM):
        return FsError(f"{path}: permission denied", 403, "FILE_ACCESS_DENIED")
    if number in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return FsError(f"{path}: the sandbox's disk is full", 413)
    if number == errno.EEXIST:
        return FsError(f"{path}: already exists", 409, "CONFLICT")
    return FsError(f"{path}: {reason}", 400)


@dataclass(frozen=True)
class FileInfo:
    """What the toolbox reports about a file."""

    name: str
    path: str
    st: os.stat_result

    def to_json(self) -> dict[str, Any]:
        """The toolbox FileInfo shape (all eight required fields and more)."""
        moment = datetime.fromtimestamp(self.st.st_mtime, UTC)
        return {
            "name": self.name,
            "path": self.path,
            "isDir": stat.S_ISDIR(self.st.st_mode),
            "size": self.st.st_size,
            "modTime": moment.strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC"),
            "modifiedAt": moment.isoformat().replace("+00:00", "Z"),
            "mode": stat.filemode(self.st.st_mode),
            "permissions": f"{stat.S_IMODE(self.st.st_mode):04o}",
            "owner": _name_of(self.st.st_uid),
            "group": _name_of(self.st.st_gid),
        }


_owner_names: dict[int, str] = {0: "root"}


def _name_of(uid: int) -> str:
    return _owner_names.get(uid, str(uid))


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, max(size, 1 << 16)):
        chunks.append(chunk)
        if sum(map(len, chunks)) > MAX_REPLACE_FILE:
            raise FsError(f"larger than {MAX_REPLACE_FILE >> 20} MiB", 400)
    return b"".join(chunks)


class SandboxFS:
    """File operations inside one sandbox. Blocking: call from a worker thread."""

    def __init__(self, root_fd: int, uid: int, home: str) -> None:
        self.root_fd = root_fd
        self.uid = uid
        self.home = home
        _owner_names[uid] = "daytona"

    # -- plumbing --------------------------------------------------------------

    def run(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` as the sandbox user (per-thread fsuid/fsgid)."""
        previous_gid = _libc.setfsgid(self.uid)
        previous_uid = _libc.setfsuid(self.uid)
        try:
            return operation()
        finally:
            _libc.setfsuid(previous_uid)
            _libc.setfsgid(previous_gid)

    def absolute(self, path: str) -> str:
        """The sandbox path for ``path`` (relative paths start at the home directory)."""
        if not isinstance(path, str) or not path or "\x00" in path:
            raise FsError("path must be a non-empty string", 400, "INVALID_FILE_PATH")
        joined = path if path.startswith("/") else posixpath.join(self.home, path)
        # Lexical clean-up only for messages and splitting; safety comes from openat2.
        return posixpath.normpath(joined).replace("//", "/")

    def _open(self, path: str, flags: int, mode: int = 0) -> int:
        how = _OpenHow(flags | os.O_CLOEXEC, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        fd = _libc.syscall(
            SYS_OPENAT2, self.root_fd, path.encode(), ctypes.byref(how), ctypes.sizeof(how)
        )
        if fd < 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number), path)
        return int(fd)

    def open_fd(self, path: str, flags: int, mode: int = 0) -> int:
        """A descriptor on ``path`` resolved inside the sandbox; the caller closes it."""
        return self._open(path, flags, mode)

    @contextlib.contextmanager
    def _fd(self, path: str, flags: int, mode: int = 0) -> Iterator[int]:
        fd = self._open(path, flags, mode)
        try:
            yield fd
        finally:
            os.close(fd)

    def _split(self, path: str) -> tuple[str, str]:
        absolute = self.absolute(path)
        parent, name = posixpath.split(absolute)
        if not name or name in (".", ".."):
            raise FsError(f"{absolute}: not allowed on the root directory")
        return parent or "/", name

    def _guard(self, path: str, operation: Callable[[], T]) -> T:
        try:
            return self.run(operation)
        except FsError:
            raise
        except OSError as error:
            raise _from_oserror(error, path) from error

    # -- reading ---------------------------------------------------------------

    def list(self, path: str) -> list[dict[str, Any]]:
        """The entries of a directory."""
        absolute = self.absolute(path)

        def operation() -> list[dict[str, Any]]:
            with self._fd(absolute, os.O_RDONLY | os.O_DIRECTORY) as fd:
                entries = []
                for name in sorted(os.listdir(fd)):
                    with contextlib.suppress(FileNotFoundError):
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                        entries.append(FileInfo(name, posixpath.join(absolute, name), st).to_json())
                return entries

        return self._guard(absolute, operation)

    def info(self, path: str) -> dict[str, Any]:
        """Details of one file or directory."""
        absolute = self.absolute(path)

        def operation() -> dict[str, Any]:
            with self._fd(absolute, os.O_PATH) as fd:
                st = os.fstat(fd)
            return FileInfo(posixpath.basename(absolute) or "/", absolute, st).to_json()

        return self._guard(absolute, operation)

    def is_dir(self, path: str) -> bool:
        """Whether ``path`` is an existing directory (used to check a cwd)."""
        try:
            return bool(self.info(path)["isDir"])
        except FsError:
            return False

    def open_read(self, path: str) -> IO[bytes]:
        """Open a regular file for reading (never a FIFO or device that could block)."""
        absolute = self.absolute(path)

        def operation() -> IO[bytes]:
            fd = self._open(absolute, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
            try:
                st = os.fstat(fd)
                if stat.S_ISDIR(st.st_mode):
                    raise FsError(f"{absolute}: is a directory", 400, "BAD_REQUEST")
                if not stat.S_ISREG(st.st_mode):
                    raise FsError(f"{absolute}: not a regular file", 400)
                os.set_blocking(fd, True)
                return os.fdopen(fd, "rb")
            except BaseException:
                os.close(fd)
                raise

        return self._guard(absolute, operation)

    # -- writing ---------------------------------------------------------------

    def _makedirs(self, absolute: str, mode: int = 0o755) -> None:
        current = "/"
        for part in [p for p in absolute.split("/") if p]:
            parent = current
            current = posixpath.join(current, part)
            try:
                with self._fd(current, os.O_PATH | os.O_DIRECTORY):
                    continue
            except FileNotFoundError:
                pass
            with (
                self._fd(parent, os.O_PATH | os.O_DIRECTORY) as parent_fd,
                contextlib.suppress(FileExistsError),
            ):
                os.mkdir(part, mode, dir_fd=parent_fd)

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        """Create a directory and any missing parents."""
        absolute = self.absolute(path)
        self._guard(absolute, lambda: self._makedirs(absolute, mode))

    def write(self, path: str, source: IO[bytes], mode: int = 0o644) -> int:
        """Create or replace a file from ``source``; a full disk removes the partial file."""
        absolute = self.absolute(path)
        parent, _name = self._split(absolute)

        def operation() -> int:
            self._makedirs(parent)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOCTTY | os.O_NONBLOCK
            fd = self._open(absolute, flags, mode)
            written = 0
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise FsError(f"{absolute}: not a regular file", 400)
                os.set_blocking(fd, True)
                while chunk := source.read(1 << 20):
                    view = memoryview(chunk)
                    while view:
                        count = os.write(fd, view)
                        view = view[count:]
                        written += count
            except OSError as error:
                if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    os.ftruncate(fd, 0)
                    with (
                        self._fd(parent, os.O_PATH | os.O_DIRECTORY) as parent_fd,
                        contextlib.suppress(OSError),
                    ):
                        os.unlink(_name, dir_fd=parent_fd)
                raise
            finally:
                os.close(fd)
            return written

        return self._guard(absolute, operation)

    def replace(self, path: str, pattern: bytes, new_value: bytes) -> None:
        """Replace every ``pattern`` in a regular file, in place (same inode and mode).

        The file is rewritten only when something changed; a growing file reserves its
        new size first, so a full disk fails before a byte of it is touched.
        """
        absolute = self.absolute(path)

        def operation() -> None:
            with self._fd(absolute, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY) as fd:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise FsError(f"{absolute}: not a regular file", 400)
                if st.st_size > MAX_REPLACE_FILE:
                    raise FsError(f"{absolute}: larger than {MAX_REPLACE_FILE >> 20} MiB", 400)
                os.set_blocking(fd, True)
                data = _read_all(fd, st.st_size)
                updated = data.replace(pattern, new_value)
                if updated == data:
                    return
                if len(updated) > len(data):
                    os.posix_fallocate(fd, 0, len(updated))
                view = memoryview(updated)
                offset = 0
                while offset < len(view):
                    offset += os.pwrite(fd, view[offset:], offset)
                os.ftruncate(fd, len(updated))

        self._guard(absolute, operation)

    def delete(self, path: str, *, recursive: bool) -> None:
        """Delete a file, or a directory tree when ``recursive``."""
        parent, name = self._split(path)
        absolute = posixpath.join(parent, name)

        def operation() -> None:
            with self._fd(parent, os.O_RDONLY | os.O_DIRECTORY) as parent_fd:
                st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    os.unlink(name, dir_fd=parent_fd)
                    return
                if not recursive:
                    raise FsError(f"{absolute}: is a directory; delete it with recursive=true")
                for _root, dirs, files, dir_fd in os.fwalk(name, dir_fd=parent_fd, topdown=False):
                    for file_name in files:
                        os.unlink(file_name, dir_fd=dir_fd)
                    for dir_name in dirs:
                        try:
                            os.rmdir(dir_name, dir_fd=dir_fd)
                        except NotADirectoryError:  # a symlink to a directory
                            os.unlink(dir_name, dir_fd=dir_fd)
                os.rmdir(name, dir_fd=parent_fd)

        self._guard(absolute, operation)

    def move(self, source: str, destination: str) -> None:
        """Rename or move a file or directory."""
        source_parent, source_name = self._split(source)
        dest_parent, dest_name = self._split(destination)

        def operation() -> None:
            with (
                self._fd(source_parent, os.O_PATH | os.O_DIRECTORY) as source_fd,
                self._fd(dest_parent, os.O_PATH | os.O_DIRECTORY) as dest_fd,
            ):
                try:
                    os.rename(source_name, dest_name, src_dir_fd=source_fd, dst_dir_fd=dest_fd)
                except OSError as error:
                    if error.errno == errno.EXDEV:
                        raise FsError("cannot move between different mounts") from error
                    raise

        self._guard(self.absolute(source), operation)

    def chmod(self, path: str, mode: int) -> None:
        """Change permission bits."""
        absolute = self.absolute(path)

        def operation() -> None:
            with self._fd(absolute, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY) as fd:
                os.fchmod(fd, mode)

        self._guard(absolute, operation)

    # -- searching -------------------------------------------------------------

    def _walk(self, absolute: str) -> Iterator[tuple[str, list[str], list[str], int]]:
        with self._fd(absolute, os.O_RDONLY | os.O_DIRECTORY) as fd:
            for root, dirs, files, dir_fd in os.fwalk(".", dir_fd=fd):
                sandbox_root = posixpath.normpath(posixpath.join(absolute, root))
                yield sandbox_root, dirs, files, dir_fd

    def search(self, path: str, pattern: str) -> list[str]:
        """Paths under ``path`` whose name matches the glob ``pattern``."""
        absolute = self.absolute(path)

        def operation() -> list[str]:
            found: list[str] = []
            for root, dirs, files, _fd in self._walk(absolute):
                for name in dirs + files:
                    if fnmatch.fnmatchcase(name, pattern):
                        found.append(posixpath.join(root, name))
                        if len(found) >= MAX_RESULTS:
                            return found
            return found

        return self._guard(absolute, operation)

    def find(self, path: str, pattern: str) -> list[dict[str, Any]]:
        """Lines containing ``pattern`` in the text files under ``path``."""
        absolute = self.absolute(path)
        needle = pattern.encode()

        def operation() -> list[dict[str, Any]]:
            matches: list[dict[str, Any]] = []
            for root, _dirs, files, dir_fd in self._walk(absolute):
                for name in files:
                    try:
                        fd = os.open(
                            name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW, dir_fd=dir_fd
                        )
                    except OSError:
                        continue
                    with os.fdopen(fd, "rb") as handle:
                        st = os.fstat(fd)
                        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_GREP_FILE:
                            continue
                        data = handle.read()
                    if b"\x00" in data[:8192]:
                        continue
                    for number, line in enumerate(data.splitlines(), 1):
                        if needle in line:
                            matches.append(
                                {
                                    "file": posixpath.join(root, name),
                                    "line": number,
                                    "content": line.decode(errors="replace"),
                                }
                            )
                            if len(matches) >= MAX_RESULTS:
                                return matches
            return matches

        return self._guard(absolute, operation)
