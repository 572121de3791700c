"""Snapshots: the SDK's calls, sources, overlay roots, refusals, pages and build logs."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from daytona import (
    CreateSandboxFromSnapshotParams,
    CreateSnapshotParams,
    Daytona,
    DaytonaConfig,
    VolumeMount,
)
from daytona.common.errors import DaytonaError

from dashboard.engine.debian import add_sandbox_user, debootstrap_command
from tests.engine.conftest import run
from tests.engine_server import EngineServer, start_engine


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for_state(api: httpx.Client, snapshot_id: str, *states: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = api.get(f"/snapshots/{snapshot_id}").json()
        if body["state"] in states:
            return body
        time.sleep(0.1)
    raise AssertionError(f"snapshot {snapshot_id} never reached {states}")


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    """A small directory tree to snapshot: an app folder and a file in the home."""
    (tmp_path / "opt" / "app").mkdir(parents=True)
    (tmp_path / "opt" / "app" / "version").write_text("1.0\n")
    (tmp_path / "home" / "daytona").mkdir(parents=True)
    (tmp_path / "home" / "daytona" / "welcome.txt").write_text("from the snapshot\n")
    return tmp_path


@pytest.fixture
def snapshot(api: httpx.Client, source_dir: Path) -> Iterator[dict[str, Any]]:
    """An active snapshot built from ``source_dir``, deleted afterwards."""
    body = {"name": unique("snap"), "imageName": f"dir:{source_dir}"}
    response = api.post("/snapshots", json=body)
    assert response.status_code == 200, response.text
    yield wait_for_state(api, response.json()["id"], "active", "build_failed")
    api.delete(f"/snapshots/{response.json()['id']}")


def test_the_sdk_creates_lists_gets_and_deletes_a_snapshot(
    daytona: Daytona, source_dir: Path
) -> None:
    name = unique("sdk-snap")
    created = daytona.snapshot.create(CreateSnapshotParams(name=name, image=f"dir:{source_dir}"))
    assert created.state == "active"
    assert daytona.snapshot.get(name).id == created.id
    assert name in [s.name for s in daytona.snapshot.list().items]
    daytona.snapshot.delete(created)
    assert name not in [s.name for s in daytona.snapshot.list().items]


def test_a_sandbox_from_a_new_snapshot_with_a_volume_sees_both(
    daytona: Daytona, api: httpx.Client, toolbox: httpx.Client, snapshot: dict[str, Any]
) -> None:
    volume = daytona.volume.create(unique("snap-vol"))
    sandbox = daytona.create(
        CreateSandboxFromSnapshotParams(
            snapshot=snapshot["name"],
            volumes=[VolumeMount(volume_id=volume.id, mount_path="/home/daytona/vol")],
            auto_stop_interval=0,
        )
    )
    try:
        assert sandbox.snapshot == snapshot["name"]
        result = sandbox.process.exec(
            "cat /opt/app/version welcome.txt && echo v > vol/x && cat vol/x && whoami"
        )
        assert result.result == "1.0\nfrom the snapshot\nv\ndaytona\n"
    finally:
        sandbox.delete()
        daytona.volume.delete(volume)


def test_each_sandbox_writes_to_its_own_layer_and_the_snapshot_stays_read_only(
    api: httpx.Client, toolbox: httpx.Client, snapshot: dict[str, Any], source_dir: Path
) -> None:
    first = api.post("/sandbox", json={"snapshot": snapshot["name"], "autoStopInterval": 0})
    second = api.post("/sandbox", json={"snapshot": snapshot["id"], "autoStopInterval": 0})
    one, two = first.json()["id"], second.json()["id"]
    try:
        assert run(toolbox, one, "echo changed > welcome.txt && cat welcome.txt")["exitCode"] == 0
        assert run(toolbox, two, "cat welcome.txt")["result"] == "from the snapshot\n"
        refused = run(toolbox, one, "echo x > /opt/app/version")
        assert refused["exitCode"] != 0  # the snapshot's own files belong to root
        assert run(toolbox, one, "touch /usr/x")["exitCode"] != 0
        # Writes survive a stop and start: the layer is on the sandbox's disk.
        api.post(f"/sandbox/{one}/stop")
        api.post(f"/sandbox/{one}/start")
        assert run(toolbox, one, "cat welcome.txt")["result"] == "changed\n"
    finally:
        api.delete(f"/sandbox/{one}")
        api.delete(f"/sandbox/{two}")
    assert (source_dir / "home" / "daytona" / "welcome.txt").read_text() == "from the snapshot\n"


def test_a_snapshot_in_use_cannot_be_deleted(api: httpx.Client, snapshot: dict[str, Any]) -> None:
    sandbox = api.post("/sandbox", json={"snapshot": snapshot["name"]}).json()
    try:
        response = api.delete(f"/snapshots/{snapshot['id']}")
        assert response.status_code == 409
        assert sandbox["id"] in response.json()["message"]
        assert api.get(f"/snapshots/{snapshot['id']}").json()["state"] == "active"
    finally:
        api.delete(f"/sandbox/{sandbox['id']}")
    assert api.delete(f"/snapshots/{snapshot['id']}").status_code == 200
    assert api.get(f"/snapshots/{snapshot['id']}").status_code == 404


def test_a_tarball_becomes_a_snapshot(
    api: httpx.Client, toolbox: httpx.Client, source_dir: Path, tmp_path_factory: Any
) -> None:
    tarball = tmp_path_factory.mktemp("tar") / "root.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(source_dir / "opt", arcname="opt")
    body = {"name": unique("tar-snap"), "imageName": f"tar:{tarball}"}
    created = api.post("/snapshots", json=body).json()
    try:
        active = wait_for_state(api, created["id"], "active", "build_failed")
        assert active["state"] == "active", active["errorReason"]
        # A few KiB of files: Daytona's size is in GiB, and rounding it to 0 read as "0 GiB".
        assert 0 < active["size"] < 0.01
        sandbox = api.post("/sandbox", json={"snapshot": body["name"]}).json()
        try:
            assert run(toolbox, sandbox["id"], "cat /opt/app/version")["result"] == "1.0\n"
        finally:
            api.delete(f"/sandbox/{sandbox['id']}")
    finally:
        api.delete(f"/snapshots/{created['id']}")


def test_a_sandbox_snapshot_keeps_its_files(api: httpx.Client, toolbox: httpx.Client) -> None:
    origin = api.post("/sandbox", json={"autoStopInterval": 0}).json()
    name = unique("from-sandbox")
    try:
        run(toolbox, origin["id"], "mkdir -p project && echo kept > project/notes")
        response = api.post(f"/sandbox/{origin['id']}/snapshot", json={"name": name})
        assert response.status_code == 200, response.text
        assert response.json()["id"] == origin["id"]
        snap = wait_for_state(api, name, "active", "build_failed")
        assert snap["state"] == "active", snap["errorReason"]
        assert snap["sourceSandboxId"] == origin["id"]
        assert api.get(f"/sandbox/{origin['id']}").json()["state"] == "started"
        copy = api.post("/sandbox", json={"snapshot": name}).json()
        try:
            assert run(toolbox, copy["id"], "cat project/notes")["result"] == "kept\n"
        finally:
            api.delete(f"/sandbox/{copy['id']}")
    finally:
        api.delete(f"/sandbox/{origin['id']}")
        api.delete(f"/snapshots/{name}")


def test_a_stopped_sandbox_can_be_snapshotted(api: httpx.Client, toolbox: httpx.Client) -> None:
    origin = api.post("/sandbox", json={"autoStopInterval": 0}).json()
    name = unique("from-stopped")
    try:
        run(toolbox, origin["id"], "echo stopped > file")
        api.post(f"/sandbox/{origin['id']}/stop")
        assert api.post(f"/sandbox/{origin['id']}/snapshot", json={"name": name}).status_code == 200
        snap = wait_for_state(api, name, "active", "build_failed")
        assert snap["state"] == "active", snap["errorReason"]
        assert api.get(f"/sandbox/{origin['id']}").json()["state"] == "stopped"
        assert api.post(f"/sandbox/{origin['id']}/start").status_code == 200
        assert run(toolbox, origin["id"], "cat file")["result"] == "stopped\n"
    finally:
        api.delete(f"/sandbox/{origin['id']}")
        api.delete(f"/snapshots/{name}")


def test_deactivate_stops_new_sandboxes_until_activated(
    api: httpx.Client, snapshot: dict[str, Any]
) -> None:
    assert api.post(f"/snapshots/{snapshot['id']}/deactivate").json()["state"] == "inactive"
    refused = api.post("/sandbox", json={"snapshot": snapshot["name"]})
    assert refused.status_code == 400
    assert "inactive" in refused.json()["message"]
    assert api.post(f"/snapshots/{snapshot['id']}/deactivate").status_code == 400
    assert api.post(f"/snapshots/{snapshot['id']}/activate").json()["state"] == "active"
    assert api.post(f"/snapshots/{snapshot['id']}/activate").status_code == 400


def test_the_list_pages_searches_and_sorts(api: httpx.Client, source_dir: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    names = [f"page-{tag}-{letter}" for letter in "cab"]
    ids = [
        api.post("/snapshots", json={"name": n, "imageName": f"dir:{source_dir}"}).json()["id"]
        for n in names
    ]
    try:
        params = {"name": f"page-{tag}", "sort": "name", "order": "asc", "limit": 2}
        first = api.get("/snapshots", params=params).json()
        assert (first["total"], first["page"], first["totalPages"]) == (3, 1, 2)
        assert [s["name"] for s in first["items"]] == [f"page-{tag}-a", f"page-{tag}-b"]
        second = api.get("/snapshots", params={**params, "page": 2}).json()
        assert [s["name"] for s in second["items"]] == [f"page-{tag}-c"]
        assert api.get("/snapshots", params={"name": "no-such-name-anywhere"}).json() == {
            "items": [],
            "total": 0,
            "page": 1,
            "totalPages": 0,
        }
    finally:
        for snapshot_id in ids:
            wait_for_state(api, snapshot_id, "active", "build_failed")
            api.delete(f"/snapshots/{snapshot_id}")


def test_the_default_snapshot_is_listed_and_cannot_be_deleted(api: httpx.Client) -> None:
    default = api.get("/snapshots/sandbar-default").json()
    assert (default["general"], default["state"]) == (True, "active")
    assert api.delete(f"/snapshots/{default['id']}").status_code == 403


def test_build_logs_follow_until_the_build_ends(api: httpx.Client, source_dir: Path) -> None:
    body = {"name": unique("logs"), "imageName": f"dir:{source_dir}"}
    created = api.post("/snapshots", json=body).json()
    try:
        url = api.get(f"/snapshots/{created['id']}/build-logs-url").json()["url"]
        assert url.endswith(f"/api/snapshots/{created['id']}/build-logs")
        with api.stream("GET", url, params={"follow": "true"}) as response:
            assert response.status_code == 200
            text = b"".join(response.iter_bytes()).decode()
        assert f"building snapshot {body['name']}" in text
        assert "is active" in text
        assert api.get(f"/snapshots/{created['id']}").json()["state"] == "active"
    finally:
        api.delete(f"/snapshots/{created['id']}")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x"},
        {"imageName": "dir:/tmp"},
        {"name": "x", "imageName": "python"},  # an image needs a tag or digest
        {"name": "x", "imageName": "127.0.0.1:9/tools"},
        {"name": "x", "imageName": "ubuntu:latest"},
        {"name": "x", "imageName": "Not An/Image:1"},
        {"name": "x", "imageName": "python@sha256:abc"},
        {"name": "x", "imageName": "dir:relative/path"},
        {"name": "x", "imageName": "dir:/no/such/directory"},
        {"name": "x", "imageName": "tar:/no/such.tar"},
        {"name": "x", "imageName": "tar:/tmp"},
        {"name": "x", "imageName": "debian:Not A Suite"},
        {"name": "has space", "imageName": "dir:/tmp"},
        {"name": "", "imageName": "dir:/tmp"},
        {"name": "x", "imageName": "dir:/tmp", "buildInfo": {"dockerfileContent": "FROM x"}},
        {"name": "x", "imageName": "dir:/tmp", "cpu": 0},
        {"name": "x", "imageName": "dir:/tmp", "gpu": 1},
        {"name": "x", "imageName": 7},
        {"name": "x", "imageName": "dir:/tmp", "colour": "blue"},
        [],
    ],
)
def test_a_bad_snapshot_request_is_a_400_and_creates_nothing(api: httpx.Client, body: Any) -> None:
    before = api.get("/snapshots", params={"limit": 200}).json()["total"]
    response = api.post("/snapshots", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["message"]
    assert api.get("/snapshots", params={"limit": 200}).json()["total"] == before


def test_a_duplicate_name_is_a_409(api: httpx.Client, snapshot: dict[str, Any]) -> None:
    response = api.post("/snapshots", json={"name": snapshot["name"], "imageName": "dir:/tmp"})
    assert response.status_code == 409


@pytest.mark.parametrize(
    "params",
    [{"page": "0"}, {"limit": "500"}, {"sort": "size"}, {"order": "up"}, {"favourite": "1"}],
)
def test_bad_list_parameters_are_a_400(api: httpx.Client, params: dict[str, str]) -> None:
    assert api.get("/snapshots", params=params).status_code == 400


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    """An engine whose Debian mirror is a closed loopback port (no traffic leaves)."""
    server = start_engine(
        tmp_path_factory.mktemp("offline-engine"), SANDBAR_DEBIAN_MIRROR="http://127.0.0.1:9/debian"
    )
    yield server
    server.stop()


def test_a_debian_build_fails_cleanly_when_the_mirror_is_unreachable(
    offline: EngineServer,
) -> None:
    with offline.client() as api:
        created = api.post("/snapshots", json={"name": "bookworm", "imageName": "debian:bookworm"})
        assert created.status_code == 200
        failed = wait_for_state(api, created.json()["id"], "build_failed", "active")
        assert failed["state"] == "build_failed"
        assert "unreachable" in failed["errorReason"]
        assert api.post("/sandbox", json={"snapshot": "bookworm"}).status_code == 400
        logs = api.get(f"/snapshots/{created.json()['id']}/build-logs").text
        assert "build failed" in logs
        assert api.delete(f"/snapshots/{created.json()['id']}").status_code == 200


def test_the_sdk_reports_a_failed_build_and_a_refused_source(offline: EngineServer) -> None:
    daytona = Daytona(DaytonaConfig(api_url=offline.api_url, api_key=offline.api_key))
    with pytest.raises(DaytonaError, match="unreachable"):
        daytona.snapshot.create(CreateSnapshotParams(name="sdk-debian", image="debian"))
    with pytest.raises(DaytonaError, match=r"Image name must include a tag"):
        daytona.snapshot.create(CreateSnapshotParams(name="sdk-python", image="python"))
    names = [s.name for s in daytona.snapshot.list().items]
    assert "sdk-python" not in names
    assert "sdk-debian" in names  # kept, in build_failed, with its reason and log
    daytona.snapshot.delete(daytona.snapshot.get("sdk-debian"))


def test_the_debootstrap_command_builds_a_minimal_base() -> None:
    assert debootstrap_command("bookworm", Path("/x/rootfs"), "http://mirror/debian") == [
        "debootstrap",
        "--variant=minbase",
        "bookworm",
        "/x/rootfs",
        "http://mirror/debian",
    ]


def test_a_debian_base_gets_the_sandbox_user_once(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\n")
    add_sandbox_user(tmp_path)
    add_sandbox_user(tmp_path)
    passwd = (tmp_path / "etc" / "passwd").read_text().splitlines()
    assert passwd[1:] == ["daytona:x:1000:1000::/home/daytona:/bin/bash"]
    assert (tmp_path / "etc" / "group").read_text().splitlines()[1:] == ["daytona:x:1000:"]
    assert (tmp_path / "home" / "daytona").is_dir()


MINI_ROOT_TOOLS = ("bash", "env", "nsenter", "setsid", "sleep", "cat", "ls", "id", "touch")


def build_mini_root(root: Path) -> None:
    """A tiny self-contained system: a few host programs with the libraries they load."""
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    libraries: set[str] = set()
    for tool in MINI_ROOT_TOOLS:
        path = shutil.which(tool)
        assert path is not None
        shutil.copy2(path, root / "usr" / "bin" / tool)
        ldd = subprocess.run(["ldd", path], capture_output=True, text=True, check=False).stdout
        libraries.update(word for word in ldd.split() if word.startswith("/"))
    for library in libraries:
        target = root / library.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(library, target)
    (root / "usr" / "bin" / "sh").symlink_to("bash")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\ndaytona:x:1000:1000:mini:/home/daytona:/bin/bash\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\ndaytona:x:1000:\n")
    (root / "etc" / "resolv.conf").symlink_to("../run/resolv.conf")
    (root / "etc" / "marker").write_text("mini root\n")


def test_a_snapshot_with_its_own_system_runs_on_it_alone(
    api: httpx.Client, toolbox: httpx.Client, tmp_path: Path
) -> None:
    build_mini_root(tmp_path)
    body = {"name": unique("mini-root"), "imageName": f"dir:{tmp_path}"}
    created = api.post("/snapshots", json=body).json()
    try:
        active = wait_for_state(api, created["id"], "active", "build_failed")
        assert active["state"] == "active", active["errorReason"]
        sandbox = api.post("/sandbox", json={"snapshot": body["name"]}).json()
        try:
            assert sandbox["state"] == "started", sandbox["errorReason"]
            result = run(toolbox, sandbox["id"], "cat /etc/marker; ls /usr/bin; id -un")
            assert result["result"].split() == [
                "mini", "root", *sorted([*MINI_ROOT_TOOLS, "sh"]), "daytona",
            ]  # fmt: skip
            # DNS still goes to slirp4netns: the engine's resolv.conf covers the snapshot's.
            resolv = run(toolbox, sandbox["id"], "cat /etc/resolv.conf")["result"]
            assert resolv == "nameserver 10.0.2.3\n"
            assert run(toolbox, sandbox["id"], "touch /etc/x")["exitCode"] != 0
        finally:
            api.delete(f"/sandbox/{sandbox['id']}")
    finally:
        api.delete(f"/snapshots/{created['id']}")


def test_snapshots_volumes_and_their_sandboxes_survive_an_engine_restart(
    tmp_path_factory: pytest.TempPathFactory, source_dir: Path
) -> None:
    server = start_engine(tmp_path_factory.mktemp("restart-engine"))
    try:
        with server.client() as api:
            snap = api.post("/snapshots", json={"name": "kept", "imageName": f"dir:{source_dir}"})
            wait_for_state(api, snap.json()["id"], "active")
            volume = api.post("/volumes", json={"name": "kept-volume"}).json()
            mount = {"volumeId": volume["id"], "mountPath": "/data"}
            body = {"snapshot": "kept", "volumes": [mount], "autoStopInterval": 0}
            sandbox = api.post("/sandbox", json=body).json()
            assert sandbox["state"] == "started", sandbox["errorReason"]
        headers = {"Authorization": f"Bearer {server.api_key}"}
        with httpx.Client(base_url=server.toolbox_url, headers=headers, timeout=60) as toolbox:
            run(toolbox, sandbox["id"], "echo layer > mine && echo volume > /data/v")
        server.stop()
        server.start()
        with (
            server.client() as api,
            httpx.Client(base_url=server.toolbox_url, headers=headers, timeout=60) as toolbox,
        ):
            assert api.get("/snapshots/kept").json()["state"] == "active"
            assert api.get("/volumes/by-name/kept-volume").json()["state"] == "ready"
            assert api.get(f"/sandbox/{sandbox['id']}").json()["state"] == "started"
            result = run(toolbox, sandbox["id"], "cat mine /data/v /opt/app/version")
            assert result["result"] == "layer\nvolume\n1.0\n"
    finally:
        server.stop()


def test_the_default_mirror_is_the_one_apt_uses(tmp_path: Path) -> None:
    from dashboard.engine.debian import apt_mirror

    assert apt_mirror(tmp_path) == ""
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian/\nSuites: bookworm\n"
    )
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] http://other.invalid/debian bookworm main\n"
    )
    assert apt_mirror(tmp_path) == "http://mirror.invalid/debian"
