"""Changes to snapshots (create, delete, activate, deactivate) and their build logs."""

import codecs
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings

from dashboard.daytona.client import (
    Unavailable,
    _error_for,
    auth_header,
    connection,
    request,
)
from dashboard.daytona.models import Sandbox, Snapshot

# A build log is read whole on every look; past this much only its tail is kept.
LOG_LIMIT = 1 << 20
# States a snapshot leaves only when someone acts: its build log is complete.
FINAL_STATES = frozenset({"active", "inactive", "error", "build_failed"})


def _path(snapshot_id: str, *rest: str) -> str:
    return "/".join(["/snapshots", quote(snapshot_id, safe=""), *rest])


async def create_snapshot(
    *,
    name: str,
    image_name: str,
    cpu: int | None = None,
    memory: int | None = None,
    disk: int | None = None,
    entrypoint: list[str] | None = None,
) -> Snapshot:
    """A new snapshot from an image (or, on the embedded engine, dir:/tar:/debian: sources)."""
    body: dict[str, Any] = {
        "name": name,
        "imageName": image_name,
        "cpu": cpu,
        "memory": memory,
        "disk": disk,
        "entrypoint": entrypoint or None,
    }
    body = {k: v for k, v in body.items() if v is not None}
    return Snapshot.from_api(await request("POST", "/snapshots", json=body))


async def snapshot_sandbox(sandbox_id: str, name: str) -> Sandbox:
    """Start snapshotting a sandbox's files as `name`; Daytona answers with the sandbox."""
    path = f"/sandbox/{quote(sandbox_id, safe='')}/snapshot"
    return Sandbox.from_api(await request("POST", path, json={"name": name}))


async def delete_snapshot(snapshot_id: str) -> None:
    """Delete a snapshot; Daytona refuses (409) while a sandbox uses it."""
    await request("DELETE", _path(snapshot_id))


async def activate_snapshot(snapshot_id: str) -> Snapshot:
    """Make an inactive snapshot usable again."""
    return Snapshot.from_api(await request("POST", _path(snapshot_id, "activate")))


async def deactivate_snapshot(snapshot_id: str) -> Snapshot:
    """Stop new sandboxes from being made from a snapshot."""
    return Snapshot.from_api(await request("POST", _path(snapshot_id, "deactivate")))


@dataclass(frozen=True)
class BuildLog:
    """A snapshot's build log as text; `truncated` when only its tail was kept."""

    text: str
    truncated: bool = False


async def _read_log(url: str, seconds: float) -> tuple[bytes, bool]:
    headers = {**auth_header(), "Accept": "*/*"}
    kept = bytearray()
    truncated = False
    try:
        # Without follow, Daytona sends the whole file and ends the response.
        async with (
            connection() as http,
            http.stream("GET", url, headers=headers, timeout=seconds) as response,
        ):
            if response.is_error:
                await response.aread()
                raise _error_for(response)
            async for chunk in response.aiter_bytes(64 << 10):
                kept += chunk
                if len(kept) > LOG_LIMIT:
                    del kept[: len(kept) - LOG_LIMIT]
                    truncated = True
    except httpx.TimeoutException:
        raise Unavailable(
            f"Daytona did not send the build log within {seconds:g} seconds."
        ) from None
    except httpx.TransportError as error:
        raise Unavailable(f"The build log cannot be reached ({type(error).__name__}).") from None
    return bytes(kept), truncated


async def build_log(snapshot_id: str, *, complete: bool = True) -> BuildLog:
    """The snapshot's build log so far (its last MiB); `complete` when the build ended."""
    found = await request("GET", _path(snapshot_id, "build-logs-url"))
    url = found.get("url") if isinstance(found, dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise Unavailable("Daytona did not say where this snapshot's build log is.")
    data, truncated = await _read_log(url, float(settings.DAYTONA_TIMEOUT))
    if truncated:
        # The cut may fall inside a character; drop the broken start of the first line.
        data = data.split(b"\n", 1)[-1]
    # A build still writing may end mid-character: keep those bytes for the next look.
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    return BuildLog(decoder.decode(data, final=complete), truncated)
