"""Changes to volumes: create and delete."""

from urllib.parse import quote

from dashboard.daytona.client import request
from dashboard.daytona.models import Volume


async def create_volume(name: str) -> Volume:
    """A new volume; Daytona makes it ready in the background."""
    return Volume.from_api(await request("POST", "/volumes", json={"name": name}))


async def delete_volume(volume_id: str) -> None:
    """Delete a volume; Daytona refuses (409) while a sandbox mounts it."""
    await request("DELETE", f"/volumes/{quote(volume_id, safe='')}")
