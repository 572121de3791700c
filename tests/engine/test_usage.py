"""Organization usage in Daytona's shape, and quotas enforced on create, start and resize."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.engine_server import EngineServer, start_engine


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    """An engine with tiny quotas: 2 CPUs, 3 GiB of memory, 7 GiB of disk, 1 volume."""
    server = start_engine(
        tmp_path_factory.mktemp("small-engine"),
        SANDBAR_QUOTA_CPU="2",
        SANDBAR_QUOTA_MEMORY="3",
        SANDBAR_QUOTA_DISK="7",
        SANDBAR_QUOTA_VOLUMES="1",
        SANDBAR_QUOTA_SNAPSHOTS="1",
        SANDBAR_ENGINE_KEY_NAME="ci-key",
    )
    yield server
    server.stop()


@pytest.fixture
def client(small: EngineServer) -> Iterator[httpx.Client]:
    """Raw HTTP to the small engine; every sandbox, volume and snapshot is removed after."""
    with small.client() as client:
        yield client
        for item in client.get("/sandbox", params={"limit": 200}).json()["items"]:
            client.delete(f"/sandbox/{item['id']}")
        for volume in client.get("/volumes").json():
            client.delete(f"/volumes/{volume['id']}")
        for snapshot in client.get("/snapshots").json()["items"]:
            if not snapshot["general"]:
                client.delete(f"/snapshots/{snapshot['id']}")


def usage(client: httpx.Client) -> dict[str, Any]:
    organization = client.get("/organizations").json()[0]["id"]
    response = client.get(f"/organizations/{organization}/usage")
    assert response.status_code == 200
    return response.json()


def region(client: httpx.Client) -> dict[str, Any]:
    entries = usage(client)["regionUsage"]
    assert len(entries) == 1
    return entries[0]


def create(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/sandbox", json={"autoStopInterval": 0, **body})


def sandbox_ids(client: httpx.Client) -> set[str]:
    return {i["id"] for i in client.get("/sandbox", params={"limit": 200}).json()["items"]}


def test_usage_counts_compute_while_running_and_disk_until_archived(
    client: httpx.Client,
) -> None:
    entry = region(client)
    assert (entry["totalCpuQuota"], entry["totalMemoryQuota"], entry["totalDiskQuota"]) == (2, 3, 7)
    assert (entry["currentCpuUsage"], entry["currentMemoryUsage"], entry["currentDiskUsage"]) == (
        0,
        0,
        0,
    )
    sandbox = create(client, cpu=1, memory=2, disk=3).json()
    entry = region(client)
    assert (entry["currentCpuUsage"], entry["currentMemoryUsage"], entry["currentDiskUsage"]) == (
        1,
        2,
        3,
    )
    client.post(f"/sandbox/{sandbox['id']}/stop")
    entry = region(client)
    assert (entry["currentCpuUsage"], entry["currentMemoryUsage"], entry["currentDiskUsage"]) == (
        0,
        0,
        3,
    )
    client.post(f"/sandbox/{sandbox['id']}/archive")
    assert region(client)["currentDiskUsage"] == 0


def test_usage_has_daytonas_fields(client: httpx.Client) -> None:
    body = usage(client)
    for key in ("totalSnapshotQuota", "currentSnapshotUsage", "totalVolumeQuota"):
        assert isinstance(body[key], int)
    assert body["totalVolumeQuota"] == 1
    entry = body["regionUsage"][0]
    for key in ("totalGpuQuota", "currentGpuUsage", "maxCpuPerSandbox", "maxDiskPerSandbox"):
        assert key in entry


def test_a_create_past_the_cpu_quota_is_a_403_and_creates_nothing(client: httpx.Client) -> None:
    assert create(client, cpu=2, memory=1, disk=1).status_code == 200
    before = sandbox_ids(client)
    response = create(client, cpu=1, memory=1, disk=1)
    assert response.status_code == 403
    assert response.json()["message"] == "Total CPU limit exceeded. Maximum allowed: 2."
    assert response.json()["error"] == "Forbidden"
    assert sandbox_ids(client) == before


def test_a_create_past_the_memory_or_disk_quota_is_a_403(client: httpx.Client) -> None:
    assert create(client, cpu=1, memory=2, disk=5).status_code == 200
    response = create(client, cpu=1, memory=2, disk=1)
    assert response.status_code == 403
    assert response.json()["message"] == "Total memory limit exceeded. Maximum allowed: 3GiB."
    response = create(client, cpu=1, memory=1, disk=3)
    assert response.status_code == 403
    assert response.json()["message"] == "Total disk limit exceeded. Maximum allowed: 7GiB."


def test_starting_past_the_quota_is_refused_and_the_sandbox_stays_stopped(
    client: httpx.Client,
) -> None:
    first = create(client, cpu=2, memory=1, disk=1).json()
    client.post(f"/sandbox/{first['id']}/stop")
    second = create(client, cpu=2, memory=1, disk=1).json()
    assert second["state"] == "started"
    response = client.post(f"/sandbox/{first['id']}/start")
    assert response.status_code == 403
    assert "Total CPU limit exceeded" in response.json()["message"]
    assert client.get(f"/sandbox/{first['id']}").json()["state"] == "stopped"


def test_resizing_past_the_quota_is_refused_and_changes_nothing(client: httpx.Client) -> None:
    sandbox = create(client, cpu=1, memory=1, disk=1).json()
    create(client, cpu=1, memory=1, disk=1)
    response = client.post(f"/sandbox/{sandbox['id']}/resize", json={"cpu": 2})
    assert response.status_code == 403
    after = client.get(f"/sandbox/{sandbox['id']}").json()
    assert (after["cpu"], after["state"]) == (1, "started")


def test_a_volume_past_the_quota_is_a_403(client: httpx.Client) -> None:
    assert client.post("/volumes", json={"name": "only-one"}).status_code == 200
    response = client.post("/volumes", json={"name": "one-too-many"})
    assert response.status_code == 403
    assert response.json()["message"] == "Volume quota exceeded. Maximum allowed: 1"
    assert [v["name"] for v in client.get("/volumes").json()] == ["only-one"]


def test_a_snapshot_past_the_quota_is_a_403(client: httpx.Client, tmp_path: Path) -> None:
    body = {"name": "first", "imageName": f"dir:{tmp_path}"}
    assert client.post("/snapshots", json=body).status_code == 200
    response = client.post("/snapshots", json={**body, "name": "second"})
    assert response.status_code == 403
    assert usage(client)["currentSnapshotUsage"] == 1


def test_an_unknown_organization_is_a_404(client: httpx.Client) -> None:
    assert client.get("/organizations/nope/usage").status_code == 404
    assert client.get("/organizations/nope").status_code == 404


def test_the_organization_shows_its_per_sandbox_limits(client: httpx.Client) -> None:
    organization = client.get("/organizations").json()[0]
    again = client.get(f"/organizations/{organization['id']}").json()
    assert again == organization
    assert organization["maxCpuPerSandbox"] >= 1


def test_a_started_sandbox_being_snapshotted_still_counts_its_cpu_and_memory() -> None:
    import sqlite3

    from dashboard.engine.usage import current_usage

    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE sandboxes (id TEXT, state TEXT, desired_state TEXT,"
        " cpu INTEGER, memory INTEGER, disk INTEGER)"
    )
    db.executemany(
        "INSERT INTO sandboxes VALUES (?, ?, ?, ?, ?, ?)",
        [
            ("running", "snapshotting", "started", 2, 4, 10),
            ("off", "snapshotting", "stopped", 1, 1, 5),
        ],
    )
    used = current_usage(db)
    assert (used.cpu, used.memory, used.disk) == (2, 4, 15)
