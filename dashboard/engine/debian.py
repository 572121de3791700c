"""Debian root filesystems built with debootstrap: the mirror, the command, the user.

Both the default image (``image.py``) and ``debian:<suite>`` snapshots (``snapshots.py``)
are built this way, from the mirror this machine's apt uses unless
``SANDBAR_DEBIAN_MIRROR`` names another.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from dashboard.engine.runtime import rootfs

DEFAULT_SUITE = "bookworm"
MIRROR_TIMEOUT = 5.0


def debootstrap_command(
    suite: str, target: Path, mirror: str, include: Sequence[str] = ()
) -> list[str]:
    """The debootstrap command line for a minimal Debian root filesystem (plus ``include``)."""
    extra = [f"--include={','.join(include)}"] if include else []
    return ["debootstrap", "--variant=minbase", *extra, suite, str(target), mirror]


def apt_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's own apt uses, or "" when it names none."""
    uris: list[str] = []
    for sources in sorted(apt_dir.glob("sources.list.d/*.sources")):
        for line in sources.read_text(errors="replace").splitlines():
            if line.strip().lower().startswith("uris:"):
                uris += line.split(":", 1)[1].split()
    classic = apt_dir / "sources.list"
    if classic.exists():
        for line in classic.read_text(errors="replace").splitlines():
            words = [w for w in line.split() if not w.startswith("[")]
            if len(words) >= 2 and words[0] == "deb":
                uris.append(words[1])
    debian = [uri for uri in uris if uri.rstrip("/").endswith("/debian")]
    return debian[0].rstrip("/") if debian else ""


async def mirror_reachable(mirror: str, wait: float = MIRROR_TIMEOUT) -> str | None:
    """None when a TCP connection to the mirror opens, else why not."""
    if not mirror:
        return "no Debian mirror is configured: set SANDBAR_DEBIAN_MIRROR"
    parsed = urllib.parse.urlsplit(mirror)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return f"{mirror} is not an http(s) URL"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parsed.hostname, port), wait)
    except (OSError, TimeoutError) as error:
        return f"Debian mirror {mirror} is unreachable: {error or 'timed out'}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


def add_sandbox_user(root: Path) -> None:
    """Give a Debian base the ``daytona`` user (uid 1000 inside) and its home."""
    etc = root / "etc"
    for name, line in (
        ("passwd", f"{rootfs.SANDBOX_USER}:x:{rootfs.SANDBOX_UID}:{rootfs.SANDBOX_UID}::"
                   f"{rootfs.HOME}:/bin/bash\n"),
        ("group", f"{rootfs.SANDBOX_USER}:x:{rootfs.SANDBOX_UID}:\n"),
    ):  # fmt: skip
        path = etc / name
        if path.is_symlink() or not path.is_file():
            continue
        content = path.read_text()
        if not any(entry.startswith(f"{rootfs.SANDBOX_USER}:") for entry in content.splitlines()):
            with open(path, "a") as handle:
                handle.write(line)
    (root / rootfs.HOME.lstrip("/")).mkdir(parents=True, exist_ok=True)


def tree_size(path: Path) -> int:
    """Bytes the files under ``path`` take on disk."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total
