"""Volumes: the SDK's calls, mounts shared between sandboxes, refusals."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from daytona import CreateSandboxFromSnapshotParams, Daytona, VolumeMount
from daytona.common.errors import DaytonaError

from tests.engine.conftest import run


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def volume(api: httpx.Client) -> Iterator[dict[str, Any]]:
    """A fresh, ready volume, deleted afterwards (once nothing mounts it)."""
    response = api.post("/volumes", json={"name": unique("vol")})
    assert response.status_code == 200, response.text
    yield response.json()
    api.delete(f"/volumes/{response.json()['id']}")


def test_the_sdk_creates_gets_lists_and_deletes_a_volume(daytona: Daytona) -> None:
    name = unique("sdk-vol")
    created = daytona.volume.create(name)
    assert created.name == name
    assert created.state == "ready"
    assert daytona.volume.get(name).id == created.id
    assert created.id in [v.id for v in daytona.volume.list()]
    daytona.volume.delete(created)
    with pytest.raises(DaytonaError):
        daytona.volume.get(name)


def test_get_with_create_makes_a_missing_volume(daytona: Daytona) -> None:
    name = unique("made-on-get")
    volume = daytona.volume.get(name, create=True)
    try:
        assert volume.name == name
    finally:
        daytona.volume.delete(volume)


def test_a_volume_is_found_by_id_and_by_name(api: httpx.Client, volume: dict[str, Any]) -> None:
    assert api.get(f"/volumes/{volume['id']}").json() == volume
    assert api.get(f"/volumes/by-name/{volume['name']}").json()["id"] == volume["id"]
    assert api.get("/volumes/by-name/no-such-volume").status_code == 404
    assert api.get("/volumes/no-such-id").status_code == 404


def test_a_duplicate_name_is_a_409(api: httpx.Client, volume: dict[str, Any]) -> None:
    response = api.post("/volumes", json={"name": volume["name"]})
    assert response.status_code == 409
    assert response.json()["statusCode"] == 409
    assert [v["name"] for v in api.get("/volumes").json()].count(volume["name"]) == 1


def test_two_sandboxes_share_a_volume_and_its_subpath(
    daytona: Daytona, api: httpx.Client, toolbox: httpx.Client, volume: dict[str, Any]
) -> None:
    writer = daytona.create(
        CreateSandboxFromSnapshotParams(
            volumes=[VolumeMount(volume_id=volume["id"], mount_path="/home/daytona/shared")],
            auto_stop_interval=0,
        )
    )
    reader = daytona.create(
        CreateSandboxFromSnapshotParams(
            volumes=[VolumeMount(volume_id=volume["name"], mount_path="/data", subpath="team/a")],
            auto_stop_interval=0,
        )
    )
    try:
        assert api.get(f"/sandbox/{writer.id}").json()["volumes"] == [
            {"volumeId": volume["id"], "mountPath": "/home/daytona/shared"}
        ]
        result = writer.process.exec(
            "mkdir -p shared/team/a && echo hello > shared/team/a/note && echo top > shared/top"
        )
        assert result.exit_code == 0, result.result
        assert run(toolbox, reader.id, "cat /data/note")["result"] == "hello\n"
        assert run(toolbox, reader.id, "ls /data")["result"] == "note\n"  # only the subpath
        # Files written through either sandbox belong to the sandbox user.
        assert run(toolbox, reader.id, "stat -c %U /data/note")["result"] == "daytona\n"
    finally:
        writer.delete()
        reader.delete()


def test_a_mounted_volume_cannot_be_deleted(api: httpx.Client, volume: dict[str, Any]) -> None:
    sandbox = api.post(
        "/sandbox",
        json={
            "volumes": [{"volumeId": volume["id"], "mountPath": "/mnt/v"}],
            "autoStopInterval": 0,
        },
    ).json()
    try:
        api.post(f"/sandbox/{sandbox['id']}/stop")
        response = api.delete(f"/volumes/{volume['id']}")
        assert response.status_code == 409
        assert sandbox["id"] in response.json()["message"]
        assert api.get(f"/volumes/{volume['id']}").json()["state"] == "ready"
    finally:
        api.delete(f"/sandbox/{sandbox['id']}")
    assert api.delete(f"/volumes/{volume['id']}").status_code == 204
    assert api.get(f"/volumes/{volume['id']}").status_code == 404
    deleted = api.get("/volumes", params={"includeDeleted": "true"}).json()
    assert [v["state"] for v in deleted if v["id"] == volume["id"]] == ["deleted"]


def test_a_volume_survives_stop_and_start(
    api: httpx.Client, toolbox: httpx.Client, volume: dict[str, Any]
) -> None:
    mount = {"volumeId": volume["id"], "mountPath": "/workspace"}
    sandbox = api.post("/sandbox", json={"volumes": [mount], "autoStopInterval": 0}).json()
    try:
        run(toolbox, sandbox["id"], "echo kept > /workspace/file")
        api.post(f"/sandbox/{sandbox['id']}/stop")
        assert api.post(f"/sandbox/{sandbox['id']}/start").status_code == 200
        assert run(toolbox, sandbox["id"], "cat /workspace/file")["result"] == "kept\n"
    finally:
        api.delete(f"/sandbox/{sandbox['id']}")


@pytest.mark.parametrize(
    "mount_path",
    [
        "relative/path",
        "/home/daytona/../../etc",
        "/data/./x",
        "/data/",
        "/",
        "/usr",
        "/usr/local/data",
        "/proc/x",
        "/etc",
        "/dev/v",
        "/sys",
        "/home/daytona",
        "/home",
        "/tmp",
        "",
        42,
        None,
    ],
)
def test_a_bad_mount_path_is_a_400_and_creates_nothing(
    api: httpx.Client, volume: dict[str, Any], mount_path: Any
) -> None:
    before = {i["id"] for i in api.get("/sandbox", params={"limit": 200}).json()["items"]}
    response = api.post(
        "/sandbox", json={"volumes": [{"volumeId": volume["id"], "mountPath": mount_path}]}
    )
    assert response.status_code == 400, response.text
    assert response.json()["message"]
    after = {i["id"] for i in api.get("/sandbox", params={"limit": 200}).json()["items"]}
    assert after == before


@pytest.mark.parametrize(
    "volumes",
    [
        "not-a-list",
        [{"volumeId": "no-such-volume", "mountPath": "/data"}],
        [{"mountPath": "/data"}],
        [{"volumeId": "{id}", "mountPath": "/data", "subpath": "../x"}],
        [{"volumeId": "{id}", "mountPath": "/data", "subpath": "/abs"}],
        [{"volumeId": "{id}", "mountPath": "/data", "extra": 1}],
        [{"volumeId": "{id}", "mountPath": "/a"}, {"volumeId": "{id}", "mountPath": "/a"}],
    ],
)
def test_a_bad_volumes_list_is_a_400(
    api: httpx.Client, volume: dict[str, Any], volumes: Any
) -> None:
    if isinstance(volumes, list):
        volumes = [{k: (volume["id"] if v == "{id}" else v) for k, v in m.items()} for m in volumes]
    response = api.post("/sandbox", json={"volumes": volumes})
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "has space"}, {"name": 3}, []])
def test_a_bad_volume_create_is_a_400(api: httpx.Client, body: Any) -> None:
    response = api.post("/volumes", json=body)
    assert response.status_code == 400
    assert response.json()["message"]
