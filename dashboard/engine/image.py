"""The default image: a Debian root filesystem of the engine's own, built once, shared.

Sandboxes made from the default snapshot (``sandbar-default``) run on this tree through
the same overlay as any snapshot (``runtime/layers.py``): the image is the read-only
lower layer, each sandbox's writes land on its own disk. Nothing of the host's ``/usr``
or ``/etc`` is shown, so what a sandbox finds does not depend on the machine.

It is built with debootstrap from the machine's apt mirror (the builder that
``debian:<suite>`` snapshots use), plus the tools code written for Daytona expects:
``python`` and ``python3`` (one interpreter), pip, venv, git, curl, node, an editor. Debian
marks its Python "externally managed" (PEP 668), which makes ``pip install --user``
refuse to run outside a venv; the image drops that marker, as Daytona's Python image
has none, so ``pip install [--user]`` installs into the sandbox user's home.

Where: ``SANDBAR_IMAGE_DIR`` (default ``SANDBAR_DATA_DIR/images``), one directory per
recipe, so engines with different data directories (the test suite starts dozens)
share one build. A build holds a lock file and works in a temporary directory that is
renamed into place at the end: a second build waits for the first and then finds the
image, and an interrupted build leaves nothing an engine would use.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from dashboard.engine.config import env_str
from dashboard.engine.debian import (
    add_sandbox_user,
    apt_mirror,
    debootstrap_command,
    mirror_reachable,
    tree_size,
)
from dashboard.engine.helpers import tied_to_engine
from dashboard.engine.runtime import rootfs

SUITE = "bookworm"
PACKAGES = (
    "python3", "python-is-python3", "python3-pip", "python3-venv",
    "git", "curl", "ca-certificates", "procps", "less", "vim-tiny", "nano",
    # code-run's javascript interpreter, as Daytona's image has one (npm is left out:
    # Debian's pulls in hundreds of packages).
    "nodejs",
    # Essential in Debian already; named because the runtime needs nsenter and setpriv
    # inside every sandbox, and bash and coreutils are promised to users.
    "bash", "coreutils", "util-linux",
)  # fmt: skip
# Bump when customize() changes what the image holds: a new recipe is a new directory.
RECIPE_VERSION = 2
# debootstrap's per-package lines for this recipe (retrieve, validate, extract, unpack,
# configure), counted on a build of 2026-12-03; only the progress bar uses it.
EXPECTED_STEPS = 720
STEP = re.compile(
    r"^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) (\S+?)(?:\.\.\.)?(?: |$)"
)
STAGES = {"retrieving": "downloading", "validating": "downloading", "extracting": "unpacking"}
MARKER = "usr/share/sandbar/image"
BUILD_COMMAND = "python manage.py engine --build-image"


class ImageError(RuntimeError):
    """The default image could not be built."""


def image_dir(data_dir: Path) -> Path:
    """``SANDBAR_IMAGE_DIR``, or ``images`` in the data directory."""
    configured = env_str("SANDBAR_IMAGE_DIR", "")
    return Path(configured).absolute() if configured else data_dir / "images"


@dataclass(frozen=True)
class DefaultImage:
    """Where the default image of the current recipe lives, and what is known about it."""

    directory: Path

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> DefaultImage:
        """The image an engine with this data directory uses."""
        return cls(image_dir(data_dir))

    @property
    def key(self) -> str:
        """A name that changes whenever the recipe does."""
        recipe = json.dumps([SUITE, sorted(PACKAGES), RECIPE_VERSION])
        return f"debian-{SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:8]}"

    @property
    def path(self) -> Path:
        """The finished image: ``rootfs/`` and ``image.json``."""
        return self.directory / self.key

    @property
    def rootfs(self) -> Path:
        """The root filesystem sandboxes see (the overlay's lower layer)."""
        return self.path / "rootfs"

    @property
    def image_name(self) -> str:
        """What the default snapshot shows as its ``imageName``."""
        return f"sandbar/{self.key}"

    @property
    def log_path(self) -> Path:
        """The last build's debootstrap output."""
        return self.directory / f"{self.key}.build.log"

    def info(self) -> dict[str, Any] | None:
        """The finished image's facts (size, build time), or None when it is not built."""
        try:
            info: dict[str, Any] = json.loads((self.path / "image.json").read_text())
        except (OSError, ValueError):
            return None
        return info if self.rootfs.is_dir() else None

    def missing_message(self) -> str | None:
        """None when the image is built, else what to run (the engine refuses to start)."""
        if self.info() is not None:
            return None
        return (
            f"the default image is not built (looked in {self.path}).\n"
            f"Build it once, as root (debootstrap, a few minutes): {BUILD_COMMAND}\n"
            "(make run and make test do this themselves; "
            "set SANDBAR_IMAGE_DIR to share one image between data directories)"
        )


def build(
    image: DefaultImage, out: TextIO = sys.stderr, mirror: str | None = None
) -> dict[str, Any]:
    """Build the image unless it exists; returns its facts. Safe to run concurrently."""
    existing = image.info()
    if existing is not None:
        return existing
    if os.geteuid() != 0:
        raise ImageError(
            f"building the default image needs root (debootstrap): sudo {BUILD_COMMAND}"
        )
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed: run scripts/setup.sh")
    image.directory.mkdir(parents=True, exist_ok=True)
    with open(image.directory / ".build.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                "another process is building the default image; waiting for it"
                f" (its log: {image.log_path})",
                file=out,
            )
            fcntl.flock(lock, fcntl.LOCK_EX)
        existing = image.info()
        if existing is not None:
            return existing
        return _build_locked(image, out, mirror)


def _build_locked(image: DefaultImage, out: TextIO, mirror: str | None) -> dict[str, Any]:
    mirror = mirror or env_str("SANDBAR_DEBIAN_MIRROR", "") or apt_mirror()
    problem = asyncio.run(mirror_reachable(mirror))
    if problem is not None:
        raise ImageError(f"cannot build the default image: {problem}")
    # Only a build that died with its lock leaves these; we hold the lock now.
    for stale in image.directory.glob(".build-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = image.directory / f".build-{image.key}-{os.getpid()}"
    root = work / "rootfs"
    root.mkdir(parents=True)
    print(
        f"building the default image {image.key} (Debian {SUITE} from {mirror});"
        " once, a few minutes",
        file=out,
    )
    started = time.monotonic()
    try:
        argv = debootstrap_command(SUITE, root, mirror, include=PACKAGES)
        _run_with_progress(argv, image.log_path, out)
        customize(root, image.key)
        info = {
            "key": image.key,
            "suite": SUITE,
            "packages": list(PACKAGES),
            "mirror": mirror,
            "builtAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "buildSeconds": round(time.monotonic() - started, 1),
            "sizeBytes": tree_size(root),
        }
        (work / "image.json").write_text(json.dumps(info, indent=2) + "\n")
        if image.path.exists():  # a leftover without image.json: never used by an engine
            shutil.rmtree(image.path)
        os.chmod(work, 0o755)  # noqa: S103 -- nothing secret; lets non-root users look
        os.rename(work, image.path)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    size, seconds = info["sizeBytes"] / 2**20, info["buildSeconds"]
    print(f"the default image is ready: {image.rootfs} ({size:.0f} MiB, {seconds:.0f} s)", file=out)
    return info


def _run_with_progress(argv: list[str], log_path: Path, out: TextIO) -> None:
    """Run debootstrap, its output to the log, a progress bar (or phase lines) to ``out``."""
    bar = ProgressBar(out, EXPECTED_STEPS)
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(argv) + "\n")
        log.flush()
        with subprocess.Popen(
            tied_to_engine(argv),  # a killed build command leaves no debootstrap behind
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as process:
            assert process.stdout is not None
            try:
                for line in process.stdout:
                    log.write(line)
                    match = STEP.match(line)
                    if match:
                        bar.step(match.group(1).lower(), match.group(2))
            except BaseException:
                process.kill()  # Popen's exit waits for it
                raise
            finally:
                bar.close()
        code = process.returncode
    if code != 0:
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-5:])
        raise ImageError(
            f"debootstrap exited with status {code}; the whole log is {log_path}\n{tail}"
        )


class ProgressBar:
    """One line redrawn in place on a terminal; elsewhere a line per stage and per 10%."""

    WIDTH = 30

    def __init__(self, out: TextIO, expected: int) -> None:
        self.out = out
        self.expected = expected
        self.done = 0
        self.phase = ""
        self.started = time.monotonic()
        self.tty = out.isatty()
        self._last_decile = -1

    def step(self, phase: str, package: str) -> None:
        """One package went through one phase."""
        self.done += 1
        fraction = min(self.done / self.expected, 0.99)
        elapsed = time.monotonic() - self.started
        if self.tty:
            filled = int(fraction * self.WIDTH)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            text = f"\r[{bar}] {fraction:4.0%} {elapsed:4.0f}s {phase} {package}"
            self.out.write(f"{text[:100]:<100}")
            self.out.flush()
        else:
            # debootstrap alternates retrieve/validate and extract/unpack per package.
            stage = STAGES.get(phase, phase)
            if stage != self.phase or int(fraction * 10) != self._last_decile:
                self.out.write(f"  {fraction:4.0%} {elapsed:4.0f}s {stage}...\n")
                self.out.flush()
            self.phase = stage
        self._last_decile = int(fraction * 10)

    def close(self) -> None:
        """End the redrawn line."""
        if self.tty and self.done:
            self.out.write("\n")
            self.out.flush()


def customize(root: Path, key: str) -> None:
    """Turn debootstrap's tree into the sandbox image."""
    add_sandbox_user(root)
    etc = root / "etc"
    # debootstrap copied the build machine's own hostname and resolv.conf.
    for name in ("hostname", "hosts", "resolv.conf"):
        path = etc / name
        if path.is_symlink():
            path.unlink()
        path.write_text(rootfs.ETC_FILES[name])
        os.chmod(path, 0o644)
    for marker in root.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    # Downloaded packages and indexes: apt cannot run in a sandbox (see the README).
    for leftover in (*root.glob("var/cache/apt/*.bin"), *root.glob("var/cache/apt/archives/*.deb")):
        leftover.unlink()
    lists = root / "var/lib/apt/lists"
    for leftover in lists.glob("*") if lists.is_dir() else ():
        if leftover.is_file():
            leftover.unlink()
    # vim-tiny answers to vi only; people (and scripts) type vim.
    vim = root / "usr/bin/vim"
    if not os.path.lexists(vim):
        vim.symlink_to("vim.tiny")
    (root / MARKER).parent.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text(f"sandbar default image {key} (Debian {SUITE})\n")
    os.chmod(root, 0o755)  # noqa: S103 -- the root directory sandboxes see


def build_command(data_dir: Path) -> int:
    """``--build-image``: build when missing, report, exit status for scripts."""
    image = DefaultImage.for_data_dir(data_dir)
    try:
        info = build(image)
    except ImageError as error:
        print(f"engine: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("engine: the default image build was interrupted; nothing was kept", file=sys.stderr)
        return 130
    print(f"default image {image.key}: {image.rootfs} ({info['sizeBytes'] / 2**20:.0f} MiB)")
    return 0
