"""The sandbox user, and what a snapshot that is not a whole system runs on.

Default sandboxes run on the engine's own Debian image (``dashboard/engine/image.py``),
which gets ``hostname``, ``hosts`` and ``resolv.conf`` from ``ETC_FILES`` at build time.
A snapshot without a system of its own (no shell) gets the host's system directories
read-only instead, and without an ``etc/passwd`` a generated ``/etc``: the host's /etc
is never shown, only a few read-only pieces that programs need and that hold no
secrets (the dynamic linker cache, alternatives symlinks, public CA certificates).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

DEFAULT_SNAPSHOT = "sandbar-default"
SANDBOX_UID = 1000
SANDBOX_USER = "daytona"
HOME = "/home/daytona"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Host pieces of /etc bound read-only over the generated one, when they exist.
HOST_ETC_BINDS = ("ld.so.cache", "alternatives", "ssl/certs", "ca-certificates", "mime.types")

ETC_FILES = {
    "passwd": (
        "root:x:0:0:root:/root:/bin/bash\n"
        f"{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_UID}:Daytona:{HOME}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    ),
    "group": f"root:x:0:\n{SANDBOX_USER}:x:{SANDBOX_UID}:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "hostname": "sandbox\n",
    # slirp4netns answers DNS on this address and forwards to the host's resolver.
    "resolv.conf": "nameserver 10.0.2.3\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
    "shells": "/bin/sh\n/bin/bash\n",
    "profile": f'export PATH="{PATH}"\n',
    "bash.bashrc": 'PS1="\\u@\\h:\\w\\$ "\n',
    "timezone": "Etc/UTC\n",
}


def host_binds() -> list[tuple[str, str]]:
    """Top-level host directories to bind read-only, and the symlinks to recreate.

    Returns (kind, name) pairs where kind is "bind" or "symlink:<target>".
    """
    entries: list[tuple[str, str]] = []
    for name in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "opt"):
        path = Path("/") / name
        if path.is_symlink():
            entries.append((f"symlink:{os.readlink(path)}", name))
        elif path.is_dir() and name != "opt":
            entries.append(("bind", name))
    return entries


def write_etc(directory: Path) -> list[str]:
    """Write the generated /etc and return the host /etc entries to bind over it."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for name, content in ETC_FILES.items():
        (directory / name).write_text(content)
    os.chmod(directory, 0o755)  # noqa: S103 -- read by the sandbox uid through a bind
    binds = []
    for name in HOST_ETC_BINDS:
        host = Path("/etc") / name
        if not host.exists():
            continue
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        # bwrap needs an existing mount point inside the read-only /etc.
        if host.is_dir():
            target.mkdir(exist_ok=True)
        else:
            target.touch()
        binds.append(name)
    for path in directory.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return binds
