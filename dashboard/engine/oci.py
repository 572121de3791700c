"""Snapshots from OCI images: pulled with skopeo, unpacked with umoci.

skopeo copies ``docker://<reference>`` from its registry into an OCI layout on the
engine's disk, with the engine's own credentials (``skopeo login``) and the host's
``/etc/containers`` policy; umoci unpacks the layout's layers into a plain root
filesystem. umoci runs ``--rootless``: every file belongs to the engine's user (host
root, which sandboxes see as ``nobody``) and device nodes are left out, so an image can
bring no device a sandbox could open. The image's environment, entrypoint and working
directory are read from its config blob in the layout and kept beside the snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import re
import stat
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dashboard.engine.errors import BadRequest
from dashboard.engine.helpers import tied_to_engine

# Daytona's own rule for image names (snapshot.service.ts), plus a tag or digest on
# the last component: an image without one would be :latest, which Daytona refuses.
IMAGE_NAME = re.compile(r"^[a-zA-Z0-9_.\-:]+(/[a-zA-Z0-9_.\-:]+)*(@sha256:[a-f0-9]{64})?$")
TAGGED = re.compile(r"(^|/)[^/:@]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$")
PULL_TIMEOUT = 30 * 60  # seconds a whole pull may take before it is given up
REGISTRY_TIMEOUT = 60.0  # seconds a registry may leave a pull without an answer or a byte
PROGRESS_EVERY = 2.0  # seconds between "received N MiB" lines in the build log
UNPACK_CHECK_EVERY = 0.5  # seconds between looks at an unpacking image's size
TAG = "snapshot"  # the tag the pulled image gets inside its private layout
# Variables the engine sets itself for its sandbox user, whatever the image says.
ENGINE_ENV = frozenset({"HOME", "USER", "LOGNAME", "HOSTNAME", "SHELL"})
FATAL = re.compile(r'level=fatal msg="((?:[^"\\]|\\.)*)"')

Log = Callable[[str], None]


class PullError(RuntimeError):
    """The image could not be pulled or unpacked; the message says why."""


@dataclass
class ImageConfig:
    """What of an image's config the engine keeps with the snapshot."""

    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""

    def to_json(self) -> str:
        """The snapshot's ``image.json``."""
        return json.dumps(asdict(self))

    @classmethod
    def load(cls, path: Path) -> ImageConfig:
        """Read ``image.json``; a snapshot that is not from an image has none."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        known = {key: data[key] for key in asdict(cls()) if key in data}
        return cls(**known)

    def sandbox_env(self) -> dict[str, str]:
        """The image's environment as a sandbox starts with it (the engine's user kept)."""
        return {k: v for k, v in self.env.items() if k not in ENGINE_ENV}


def parse_reference(name: str) -> str:
    """Validate an image name as Daytona does; 400 with Daytona's words otherwise."""
    if "@sha256:" in name:
        image, _, digest = name.partition("@sha256:")
        if not image or not re.fullmatch(r"[a-f0-9]{64}", digest):
            raise BadRequest("Invalid digest format. Must be image@sha256:64_hex_characters")
    elif ":" not in name or not TAGGED.search(name):
        raise BadRequest(
            "Image name must include a tag (e.g., ubuntu:22.04) or digest (@sha256:...)"
        )
    if name.endswith(":latest"):
        raise BadRequest('Images with tag ":latest" are not allowed')
    if not IMAGE_NAME.match(name) or name != name.strip():
        raise BadRequest(
            "Invalid image name format. Must be lowercase, may contain digits, dots, "
            "dashes, and single slashes between components"
        )
    return name


def registry_host(reference: str) -> str:
    """The registry part of a reference ("docker.io" when it names none, as Docker does)."""
    first, _, rest = reference.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def is_loopback(reference: str) -> bool:
    """Whether the registry is on this machine, which Docker also talks to over plain HTTP."""
    host = registry_host(reference).partition(":")[0]  # names allow no [v6]:port
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def inspect_command(reference: str) -> list[str]:
    """skopeo's command line that fetches the image's manifest (is it there at all?)."""
    tls = ["--tls-verify=false"] if is_loopback(reference) else []
    return ["skopeo", "inspect", "--raw", "--retry-times", "0", *tls, f"docker://{reference}"]


def copy_command(reference: str, layout: Path) -> list[str]:
    """skopeo's command line that copies the image into an OCI layout."""
    tls = ["--src-tls-verify=false"] if is_loopback(reference) else []
    return [
        "skopeo", "copy", "--retry-times", "2",
        *tls, f"docker://{reference}", f"oci:{layout}:{TAG}",
    ]  # fmt: skip


def unpack_command(layout: Path, bundle: Path) -> list[str]:
    """umoci's command line that unpacks the layout's image into ``bundle/rootfs``."""
    return ["umoci", "unpack", "--rootless", "--image", f"{layout}:{TAG}", str(bundle)]


def fatal_message(output: str) -> str:
    """The reason a Go tool (skopeo, umoci) gave for failing, from its last lines."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        found = FATAL.search(line)
        if found:
            return found.group(1).replace('\\"', '"').replace("\\\\", "\\")
    return lines[-1] if lines else ""


def read_config(layout: Path) -> ImageConfig:
    """The image config of the layout's one tagged image."""
    index = json.loads((layout / "index.json").read_text())
    manifest = _blob(layout, index["manifests"][0]["digest"])
    config = _blob(layout, manifest["config"]["digest"]).get("config") or {}
    env = {}
    for entry in config.get("Env") or []:
        key, sep, value = entry.partition("=")
        if sep and key:
            env[key] = value
    return ImageConfig(
        env=env,
        entrypoint=list(config.get("Entrypoint") or []),
        cmd=list(config.get("Cmd") or []),
        workdir=config.get("WorkingDir") or "",
        user=config.get("User") or "",
    )


def _blob(layout: Path, digest: str) -> dict:
    algorithm, _, value = digest.partition(":")
    if not re.fullmatch(r"[a-z0-9]+", algorithm) or not re.fullmatch(r"[a-f0-9]+", value):
        raise PullError(f"the image names a malformed digest {digest!r}")
    data = json.loads((layout / "blobs" / algorithm / value).read_text())
    if not isinstance(data, dict):
        raise PullError(f"blob {digest} is not a JSON object")
    return data


def directory_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` so far (a pull in progress grows it)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def check_size(path: Path, limit: float | None) -> int:
    """Bytes under ``path``; PullError past ``limit`` (a layer may expand a thousandfold,
    and the host's disk is not the sandbox's)."""
    size = directory_bytes(path)
    if limit is not None and size > limit:
        raise PullError(f"the image is larger than {limit / 2**30:g} GiB (SANDBAR_IMAGE_MAX_SIZE)")
    return size


async def watch_size(path: Path, limit: float | None, every: float = PROGRESS_EVERY) -> None:
    """PullError once ``path`` grows past ``limit`` (cancelled when done)."""
    while True:
        await asyncio.sleep(every)
        await asyncio.to_thread(check_size, path, limit)


async def watch_progress(
    layout: Path,
    log: Log,
    every: float = PROGRESS_EVERY,
    stall: float | None = None,
    limit: float | None = None,
) -> None:
    """Log how much of the image has arrived, while it grows (cancelled when done);
    PullError once nothing has arrived for ``stall`` seconds or past ``limit`` bytes."""
    shown, quiet_since = 0, time.monotonic()
    while True:
        await asyncio.sleep(every)
        size = await asyncio.to_thread(check_size, layout, limit)
        if size != shown:
            shown, quiet_since = size, time.monotonic()
            log(f"received {size / 2**20:.1f} MiB")
        elif stall is not None and time.monotonic() - quiet_since > stall:
            raise PullError(f"the registry sent nothing for {stall:.0f} s")


async def run_tool(
    argv: list[str], log: Log, seconds: float, *, late: str, echo: bool = True
) -> str:
    """Run skopeo or umoci, its output into the build log (``echo``); PullError on a
    failure, with the tool's reason, or ``late`` after ``seconds``. Returns the output."""
    log("$ " + " ".join(argv))
    process = await asyncio.create_subprocess_exec(
        *tied_to_engine(argv),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []

    async def copy() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            if echo:
                log(line)
            lines.append(line)

    try:
        async with asyncio.timeout(seconds):
            await asyncio.gather(copy(), process.wait())
    except (TimeoutError, asyncio.CancelledError) as error:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        if isinstance(error, TimeoutError):
            raise PullError(late) from None
        raise
    if process.returncode != 0:
        if not echo:
            log("\n".join(lines[-20:]))
        reason = fatal_message("\n".join(lines[-20:]))
        raise PullError(f"{argv[0]}: {reason or f'exited with status {process.returncode}'}")
    return "\n".join(lines)


def describe_manifest(raw: str) -> str:
    """A line for the build log about what the registry says the image is."""
    try:
        manifest = json.loads(raw)
        if "manifests" in manifest:
            return f"the registry has {len(manifest['manifests'])} platform images of it"
        layers = manifest.get("layers") or []
        size = sum(int(layer.get("size", 0)) for layer in layers)
    except (ValueError, TypeError, AttributeError):
        return "the registry answered"
    return f"the registry has it: {len(layers)} layers, {size / 2**20:.1f} MiB compressed"


async def _until_done(tool: Coroutine[Any, Any, str], watch: Coroutine[Any, Any, None]) -> None:
    """Run ``tool`` while ``watch`` looks on: the watcher's PullError ends both."""
    tasks = asyncio.create_task(tool), asyncio.create_task(watch)
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if tasks[1] in done:
        tasks[1].result()
    tasks[0].result()


async def pull(
    reference: str,
    work: Path,
    log: Log,
    *,
    answer: float = REGISTRY_TIMEOUT,
    limit: float | None = None,
) -> tuple[Path, ImageConfig]:
    """Pull ``reference`` into ``work`` and unpack it: its root filesystem and config.

    The registry must answer, and then send data, within ``answer`` seconds each time
    (skopeo itself would wait for ever on a registry that accepts and never replies).
    Neither the pulled layers nor the unpacked files may pass ``limit`` bytes.
    """
    layout, bundle = work / "oci", work / "bundle"
    host = registry_host(reference)
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    log(f"pulling {reference} from {host}")
    silent = f"the registry {host} did not answer within {answer:.0f} s"
    manifest = await run_tool(inspect_command(reference), log, answer, late=silent, echo=False)
    log(describe_manifest(manifest))
    late = f"the pull took longer than {PULL_TIMEOUT} s"
    await _until_done(
        run_tool(copy_command(reference, layout), log, PULL_TIMEOUT, late=late),
        watch_progress(layout, log, stall=answer, limit=limit),
    )
    try:
        config = await asyncio.to_thread(read_config, layout)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
        raise PullError(f"the pulled image has no readable config: {error}") from None
    log(f"pulled {await asyncio.to_thread(directory_bytes, layout) / 2**20:.1f} MiB; unpacking")
    await _until_done(
        run_tool(unpack_command(layout, bundle), log, PULL_TIMEOUT, late="unpacking took too long"),
        watch_size(bundle, limit, every=UNPACK_CHECK_EVERY),
    )
    await asyncio.to_thread(check_size, bundle, limit)  # what grew after the last look
    await asyncio.to_thread(drop_set_id_bits, bundle / "rootfs")
    return bundle / "rootfs", config


def drop_set_id_bits(root: Path) -> None:
    """Clear set-user-ID and set-group-ID bits under ``root``. umoci keeps an image's
    modes, so its files would be set-uid to host root on the host's disk; in a sandbox
    (whose user namespace does not map their owner) the bits never worked anyway."""
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if info.st_mode & (stat.S_ISUID | stat.S_ISGID) and not stat.S_ISLNK(info.st_mode):
                os.chmod(path, stat.S_IMODE(info.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))
