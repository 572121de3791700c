"""Snapshots from OCI images, pulled from a registry this test runs on loopback.

The registry is Debian's ``docker-registry`` on 127.0.0.1 (``scripts/setup.sh test``
installs it); the images are built here with umoci from tarballs the test writes and
pushed with skopeo. No traffic leaves the machine: every image name is a loopback one.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import socket
import stat
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from daytona import CreateSandboxFromSnapshotParams, CreateSnapshotParams, Daytona, Image
from daytona.common.errors import DaytonaError

from dashboard.engine import oci, prereqs
from dashboard.engine.app import create_app
from dashboard.engine.config import EngineConfig
from dashboard.engine.lifecycle import Engine
from tests.engine_server import EngineServer, start_engine

REGISTRY_START = 20.0  # seconds the registry may take to answer
GREETING = "hello from the image\n"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Docker registry on a free loopback port: its ``host:port``."""
    binary = shutil.which("docker-registry")
    assert binary, "docker-registry is missing: run scripts/setup.sh test"
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        "log:\n  level: warn\n"
    )
    with open(root / "registry.log", "wb") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + REGISTRY_START
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (root / "registry.log").read_text()
            assert time.monotonic() < deadline, "the registry did not start"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def layer(path: Path, entries: dict[str, bytes | None]) -> Path:
    """A tarball of the given files (``None``: an empty directory)."""
    with tarfile.open(path, "w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.mtime = int(time.time())
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return path


def push(work: Path, reference: str, layers: list[Path], *config: str) -> None:
    """Build an image of ``layers`` (in order) with umoci and push it with skopeo."""
    image = f"{work / 'layout'}:build"
    steps = [
        ["umoci", "init", "--layout", str(work / "layout")],
        ["umoci", "new", "--image", image],
        *(["umoci", "raw", "add-layer", "--image", image, str(tar)] for tar in layers),
        ["umoci", "config", "--image", image, *config],
        ["skopeo", "copy", "--dest-tls-verify=false", f"oci:{image}", f"docker://{reference}"],
    ]
    for argv in steps:
        subprocess.run(argv, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tools_image(registry: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image of two layers: files, then a whiteout that deletes one of them."""
    work = tmp_path_factory.mktemp("image")
    first = layer(
        work / "first.tar",
        {"opt/": None, "opt/tools/": None, "opt/tools/greeting": GREETING.encode(),
         "opt/tools/obsolete": b"removed by the next layer\n"},
    )  # fmt: skip
    second = layer(work / "second.tar", {"opt/tools/.wh.obsolete": b""})
    reference = f"{registry}/sandbar/tools:1.0"
    push(
        work, reference, [first, second],
        "--config.env", "GREETING_FILE=/opt/tools/greeting",
        "--config.env", "HOME=/root",
        "--config.workingdir", "/opt/tools",
        "--config.entrypoint", "/opt/tools/run",
    )  # fmt: skip
    return reference


def wait_for_state(api: httpx.Client, snapshot_id: str, *states: str, limit: float = 60) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        body = api.get(f"/snapshots/{snapshot_id}").json()
        if body["state"] in states:
            return body
        time.sleep(0.1)
    raise AssertionError(f"snapshot {snapshot_id} never reached {states} in {limit} s")


def test_the_engine_says_it_can_pull_images(api: httpx.Client) -> None:
    assert api.get("/sandbar/engine").json()["features"]["images"] is True


def test_an_image_from_a_registry_becomes_a_snapshot_whose_sandbox_reads_its_files(
    daytona: Daytona, api: httpx.Client, tools_image: str
) -> None:
    name = unique("tools")
    logs: list[str] = []
    snapshot = daytona.snapshot.create(
        CreateSnapshotParams(name=name, image=tools_image), on_logs=logs.append
    )
    try:
        assert snapshot.state == "active"
        assert snapshot.image_name == tools_image
        assert snapshot.entrypoint == ["/opt/tools/run"]  # taken from the image, as Daytona does
        sandbox = daytona.create(CreateSandboxFromSnapshotParams(snapshot=name))
        try:
            read = sandbox.process.exec('cat "$GREETING_FILE"')
            assert (read.exit_code, read.result) == (0, GREETING)
            gone = sandbox.process.exec("test -e /opt/tools/obsolete && echo present || echo gone")
            assert gone.result.strip() == "gone"  # the second layer's whiteout applied
            home = sandbox.process.exec('echo "$HOME $(id -un)"')
            assert home.result.strip() == "/home/daytona daytona"  # the image's HOME is not
        finally:
            sandbox.delete()
        text = api.get(f"/snapshots/{snapshot.id}/build-logs").text
        assert f"pulling {tools_image}" in text
        assert "the registry has it: 2 layers" in text
        assert "Copying blob sha256:" in text  # skopeo's own progress
        assert "is active" in text
    finally:
        daytona.snapshot.delete(daytona.snapshot.get(name))


def test_a_pull_goes_through_pulling_to_active_with_a_size(
    api: httpx.Client, tools_image: str
) -> None:
    created = api.post("/snapshots", json={"name": unique("pulled"), "imageName": tools_image})
    assert created.status_code == 200, created.text
    assert created.json()["state"] == "pending"
    seen = {created.json()["state"]}
    deadline = time.monotonic() + 60
    body = created.json()
    while body["state"] not in ("active", "error") and time.monotonic() < deadline:
        body = api.get(f"/snapshots/{body['id']}").json()
        seen.add(body["state"])
        time.sleep(0.02)
    try:
        assert body["state"] == "active", body
        assert body["size"] > 0
        assert "building" not in seen and "build_failed" not in seen
    finally:
        api.delete(f"/snapshots/{body['id']}")


def test_an_image_the_registry_does_not_have_ends_in_error_with_its_reason(
    api: httpx.Client, registry: str
) -> None:
    reference = f"{registry}/sandbar/missing:1.0"
    created = api.post("/snapshots", json={"name": unique("missing"), "imageName": reference})
    assert created.status_code == 200, created.text
    failed = wait_for_state(api, created.json()["id"], "error", "active", "build_failed")
    try:
        assert failed["state"] == "error"
        assert "manifest unknown" in failed["errorReason"]
        refused = api.post("/sandbox", json={"snapshot": failed["name"]})
        assert refused.status_code == 400
        assert "manifest unknown" in refused.json()["message"]
        assert "build failed: skopeo" in api.get(f"/snapshots/{failed['id']}/build-logs").text
    finally:
        api.delete(f"/snapshots/{failed['id']}")


def test_an_unreachable_registry_ends_in_error_at_once_not_a_hang(daytona: Daytona) -> None:
    closed = f"127.0.0.1:{free_port()}"  # nothing listens once the probe socket is closed
    name = unique("unreachable")
    started = time.monotonic()
    with pytest.raises(DaytonaError, match="connection refused"):
        daytona.snapshot.create(CreateSnapshotParams(name=name, image=f"{closed}/x/y:2.0"))
    assert time.monotonic() - started < 30
    failed = daytona.snapshot.get(name)
    assert failed.state == "error"
    assert closed in (failed.error_reason or "")
    daytona.snapshot.delete(failed)


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    """An engine that gives a silent registry 2 s, not the default minute."""
    server = start_engine(tmp_path_factory.mktemp("impatient"), SANDBAR_REGISTRY_TIMEOUT="2")
    yield server
    server.stop()


def test_a_registry_that_never_answers_ends_in_error_after_the_set_wait(
    impatient: EngineServer,
) -> None:
    # A listening loopback socket: connections open, and nothing is ever said on them
    # (skopeo alone would wait for ever).
    with socket.socket() as silent, impatient.client() as api:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        reference = f"127.0.0.1:{silent.getsockname()[1]}/x/y:1.0"
        started = time.monotonic()
        created = api.post("/snapshots", json={"name": unique("silent"), "imageName": reference})
        assert created.status_code == 200, created.text
        failed = wait_for_state(api, created.json()["id"], "error", "active", limit=30)
        assert time.monotonic() - started < 15
        assert failed["state"] == "error"
        assert "did not answer within 2 s" in failed["errorReason"]
        api.delete(f"/snapshots/{failed['id']}")


def commands_naming(text: str) -> list[str]:
    """Command lines of this machine's processes that contain ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if text in line:
                found.append(line)
    return found


def test_deleting_a_snapshot_while_it_pulls_stops_the_pull(api: httpx.Client) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        reference = f"127.0.0.1:{silent.getsockname()[1]}/x/y:1.0"
        created = api.post("/snapshots", json={"name": unique("stopped"), "imageName": reference})
        assert created.status_code == 200, created.text
        wait_for_state(api, created.json()["id"], "pulling")
        deadline = time.monotonic() + 10
        while not commands_naming(reference) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert commands_naming(reference), "skopeo never started"
        started = time.monotonic()
        assert api.delete(f"/snapshots/{created.json()['id']}").status_code == 200
        assert time.monotonic() - started < 5
        assert api.get(f"/snapshots/{created.json()['id']}").status_code == 404
        assert commands_naming(reference) == []


def test_a_pull_cut_short_by_an_engine_restart_ends_in_error(tmp_path: Path) -> None:
    own = start_engine(tmp_path / "data")  # the default minute: the pull is still on at stop
    try:
        restart_during_a_pull(own)
    finally:
        own.stop()


def restart_during_a_pull(engine: EngineServer) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        reference = f"127.0.0.1:{silent.getsockname()[1]}/x/y:1.0"
        with engine.client() as api:
            created = api.post("/snapshots", json={"name": unique("cut"), "imageName": reference})
            assert created.status_code == 200, created.text
            wait_for_state(api, created.json()["id"], "pulling")
        engine.stop()
        engine.start()
    with engine.client() as api:
        after = api.get(f"/snapshots/{created.json()['id']}").json()
        assert after["state"] == "error"  # a pull's failure, as Daytona's, not build_failed
        assert "interrupted by an engine restart" in after["errorReason"]
        api.delete(f"/snapshots/{after['id']}")
    assert commands_naming(reference) == []


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("tools", "must include a tag"),
        ("127.0.0.1:5000/tools", "must include a tag"),
        ("tools:latest", 'tag ":latest" are not allowed'),
        ("tools@sha256:1234", "Invalid digest format"),
        ("two//slashes:1", "Invalid image name format"),
        ("docker://tools:1", "Invalid image name format"),
    ],
)
def test_a_malformed_image_name_is_a_400_in_daytonas_words(
    api: httpx.Client, image: str, message: str
) -> None:
    response = api.post("/snapshots", json={"name": unique("bad"), "imageName": image})
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_a_dockerfile_build_is_refused_naming_the_alternative(daytona: Daytona) -> None:
    image = Image.debian_slim("3.12").pip_install("requests")
    with pytest.raises(DaytonaError, match="not supported by the embedded engine") as refused:
        daytona.snapshot.create(CreateSnapshotParams(name=unique("dockerfile"), image=image))
    assert "imageName" in str(refused.value)


async def test_an_engine_without_skopeo_refuses_an_image_and_names_the_fix(
    tmp_path: Path,
) -> None:
    no_tools = prereqs.Host(path=str(tmp_path))  # an empty PATH: neither skopeo nor umoci
    checks = prereqs._commands(no_tools, {"skopeo": "skopeo", "umoci": "umoci"}, prereqs.IMAGES)
    report = prereqs.Report([prereqs.check_root(prereqs.Host()), *checks])
    config = replace(EngineConfig(data_dir=tmp_path / "data"), warm_pool=0)
    engine = Engine(config, report)
    app = create_app(engine, "key", manage_engine=False)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": "Bearer key"}
    async with httpx.AsyncClient(transport=transport, base_url="http://e", headers=headers) as api:
        body = {"name": "tools", "imageName": "127.0.0.1:9/tools:1.0"}
        response = await api.post("/api/snapshots", json=body)
        assert response.status_code == 400
        assert "apt-get install skopeo" in response.json()["message"]
        assert (await api.get("/api/sandbar/engine")).json()["features"]["images"] is False
        names = [s["name"] for s in (await api.get("/api/snapshots")).json()["items"]]
        assert "tools" not in names
    engine.store.close()


# -- the pieces, without a registry ------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "host", "loopback"),
    [
        ("python:3.12-slim", "docker.io", False),
        ("library/python:3.12", "docker.io", False),
        ("ghcr.io/org/tool:1", "ghcr.io", False),
        ("127.0.0.1:5000/x:1", "127.0.0.1:5000", True),
        ("localhost:5000/x:1", "localhost:5000", True),
        ("10.0.0.1:5000/x:1", "10.0.0.1:5000", False),
    ],
)
def test_the_registry_of_a_reference_is_docker_hub_unless_named(
    reference: str, host: str, loopback: bool
) -> None:
    assert oci.registry_host(reference) == host
    assert oci.is_loopback(reference) is loopback
    assert ("--src-tls-verify=false" in oci.copy_command(reference, Path("/x"))) is loopback


def test_a_go_tools_fatal_line_is_its_reason() -> None:
    output = (
        "Getting image source signatures\n"
        'time="2026-01-01T00:00:00Z" level=fatal msg="reading manifest 1 in r/x: '
        'manifest unknown: \\"x\\""\n'
    )
    assert oci.fatal_message(output) == 'reading manifest 1 in r/x: manifest unknown: "x"'
    assert oci.fatal_message("plain failure\n") == "plain failure"


def test_the_image_env_keeps_the_engine_user() -> None:
    config = oci.ImageConfig(env={"PATH": "/opt/bin:/usr/bin", "HOME": "/root", "A": "1"})
    assert config.sandbox_env() == {"PATH": "/opt/bin:/usr/bin", "A": "1"}


async def test_a_growing_pull_is_reported_in_mib_as_it_arrives(tmp_path: Path) -> None:
    lines: list[str] = []
    watcher = asyncio.create_task(oci.watch_progress(tmp_path, lines.append, every=0.05))
    await asyncio.sleep(0.2)
    assert lines == []  # nothing arrived: nothing said
    (tmp_path / "blob").write_bytes(b"x" * 2**20)
    await asyncio.sleep(0.3)
    (tmp_path / "blob2").write_bytes(b"x" * 2**19)
    await asyncio.sleep(0.3)
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    assert lines == ["received 1.0 MiB", "received 1.5 MiB"]


async def test_a_pull_that_stops_receiving_is_given_up(tmp_path: Path) -> None:
    (tmp_path / "partial").write_bytes(b"x" * 1024)
    with pytest.raises(oci.PullError, match="sent nothing for 0 s"):
        await asyncio.wait_for(oci.watch_progress(tmp_path, print, every=0.05, stall=0.2), 5)


def test_the_manifest_is_described_in_layers_and_mib() -> None:
    manifest = '{"layers": [{"size": 1048576}, {"size": 524288}]}'
    assert oci.describe_manifest(manifest) == "the registry has it: 2 layers, 1.5 MiB compressed"
    index = '{"manifests": [{}, {}, {}]}'
    assert oci.describe_manifest(index) == "the registry has 3 platform images of it"
    assert oci.describe_manifest("not json") == "the registry answered"


# -- an image author's tricks -----------------------------------------------------------


def hostile_layer(path: Path, entries: list[tarfile.TarInfo]) -> Path:
    """A tarball of raw entries, as an image author may write them (links, devices,
    modes and names no honest build makes)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info in entries:
            data = b"written by the image\n" if info.type == tarfile.REGTYPE else b""
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return path


def entry(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, **extra: Any) -> Any:
    info = tarfile.TarInfo(name)
    info.type, info.mode = kind, mode
    for key, value in extra.items():
        setattr(info, key, value)
    return info


def pull_snapshot(api: httpx.Client, reference: str) -> dict[str, Any]:
    created = api.post("/snapshots", json={"name": unique("hostile"), "imageName": reference})
    assert created.status_code in (200, 201), created.text
    return wait_for_state(api, created.json()["id"], "active", "error", limit=120)


def test_an_images_links_devices_and_setuid_files_stay_inside_its_snapshot(
    api: httpx.Client, registry: str, engine: EngineServer, tmp_path: Path
) -> None:
    outside = tmp_path / "host"
    outside.mkdir()
    secret = outside / "secret"
    secret.write_text("the host's\n")
    first = hostile_layer(
        tmp_path / "first.tar",
        [
            entry("escape", tarfile.SYMTYPE, 0o777, linkname=str(outside)),
            entry("up", tarfile.SYMTYPE, 0o777, linkname="../" * 12 + str(outside).lstrip("/")),
            entry("suid", mode=0o4755, uid=0, gid=0),
            entry("null", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3),
        ],
    )
    second = hostile_layer(
        tmp_path / "second.tar",
        [entry("escape/through-absolute"), entry("up/through-dots"), entry("../../beside")],
    )
    push(tmp_path / "links", f"{registry}/sandbar/hostile:1.0", [first, second])
    links = hostile_layer(
        tmp_path / "hard.tar",
        [entry("hard", tarfile.LNKTYPE, linkname=str(secret)),
         entry("dots", tarfile.LNKTYPE, linkname="../" * 12 + str(secret).lstrip("/"))],
    )  # fmt: skip
    push(tmp_path / "hard", f"{registry}/sandbar/hard-links:1.0", [links])

    snapshot = pull_snapshot(api, f"{registry}/sandbar/hostile:1.0")
    refused = pull_snapshot(api, f"{registry}/sandbar/hard-links:1.0")
    try:
        # A hard link to a host file has nothing to link inside the image: the pull fails.
        assert refused["state"] == "error" and "hard" in refused["errorReason"]
        # Nothing was written, linked or replaced outside the snapshot.
        assert sorted(p.name for p in outside.iterdir()) == ["secret"]
        assert (secret.stat().st_nlink, secret.read_text()) == (1, "the host's\n")
        assert not (tmp_path.parent / "beside").exists()
        assert snapshot["state"] == "active", snapshot["errorReason"]
        rootfs = engine.data_dir / "engine" / "snapshots" / snapshot["id"] / "rootfs"
        # The writes through the links landed inside the snapshot's own root.
        assert (rootfs / str(outside).lstrip("/") / "through-absolute").is_file()
        assert (rootfs / str(outside).lstrip("/") / "through-dots").is_file()
        # No device node comes with an image, and no file set-uid to host root.
        node = (rootfs / "null").lstat()
        assert not (stat.S_ISCHR(node.st_mode) or stat.S_ISBLK(node.st_mode)), oct(node.st_mode)
        suid = (rootfs / "suid").lstat()
        assert not (suid.st_uid == 0 and suid.st_mode & 0o6000), oct(suid.st_mode)
    finally:
        for made in (snapshot, refused):
            api.delete(f"/snapshots/{made['id']}")


@pytest.fixture(scope="module")
def frugal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    """An engine that takes images of at most 16 MiB."""
    server = start_engine(
        tmp_path_factory.mktemp("frugal"),
        SANDBAR_IMAGE_MAX_SIZE=str(16 / 1024),
        SANDBAR_ENGINE_WARM_POOL="0",
    )
    yield server
    server.stop()


def test_an_image_that_unpacks_past_the_limit_ends_in_error_and_leaves_nothing(
    frugal: EngineServer, registry: str, tmp_path: Path
) -> None:
    # 64 MiB of zeros is a few hundred KiB compressed: a decompression bomb in miniature,
    # which must not fill the host's disk however small it was to pull.
    bomb = layer(tmp_path / "zeros.tar", {"zeros": b"\0" * (64 << 20)})
    reference = f"{registry}/sandbar/zeros:1.0"
    push(tmp_path, reference, [bomb])
    assert oci.directory_bytes(tmp_path / "layout") < 4 << 20  # what the registry holds
    with frugal.client() as api:
        created = api.post("/snapshots", json={"name": unique("zeros"), "imageName": reference})
        assert created.status_code in (200, 201), created.text
        snapshot = wait_for_state(api, created.json()["id"], "active", "error", limit=120)
        assert snapshot["state"] == "error"
        assert "larger than 0.015625 GiB (SANDBAR_IMAGE_MAX_SIZE)" in snapshot["errorReason"]
        left = frugal.data_dir / "engine" / "snapshots" / snapshot["id"]
        assert sorted(p.name for p in left.iterdir()) == ["build.log"]
        api.delete(f"/snapshots/{snapshot['id']}")
