"""The default image: a Debian of the engine's own with python, pip, venv, git and curl.

Sandboxes here run with networkBlockAll where they install things, so every install
comes from a wheel the test writes itself; nothing reaches a network.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from daytona import CreateSandboxFromSnapshotParams, Daytona, Sandbox
from django.urls import reverse

from dashboard.engine import image
from dashboard.engine.runtime.layers import RootLayer
from dashboard.engine.snapshots import TERMINAL
from dashboard.snapshots.templatetags.snapshots import gib_size
from tests.engine.conftest import create, run
from tests.engine_server import IMAGE_DIR, ROOT, EngineServer

WHEEL_NAME = "sandbar_probe-1.0-py3-none-any.whl"


def make_wheel() -> bytes:
    """A minimal pure-Python wheel, written by hand (no build tools, no index)."""
    files = {
        "sandbar_probe/__init__.py": b"VALUE = 'from the wheel'\n",
        "sandbar_probe-1.0.dist-info/METADATA": (
            b"Metadata-Version: 2.1\nName: sandbar-probe\nVersion: 1.0\n"
        ),
        "sandbar_probe-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(content)}")
    record.append("sandbar_probe-1.0.dist-info/RECORD,,")
    files["sandbar_probe-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def offline(daytona: Daytona) -> Iterator[Sandbox]:
    """A default sandbox without any network, holding the probe wheel in /tmp."""
    created = daytona.create(CreateSandboxFromSnapshotParams(network_block_all=True))
    created.fs.upload_file(make_wheel(), f"/tmp/{WHEEL_NAME}")
    yield created
    created.delete()


def sh(sandbox: Sandbox, command: str) -> str:
    """Run a command in the sandbox; fail the test with its output unless it exits 0."""
    response = sandbox.process.exec(command, timeout=120)
    assert response.exit_code == 0, f"{command}: {response.result}"
    return response.result


def test_python_and_python3_are_one_interpreter(sandbox: Sandbox) -> None:
    assert sh(sandbox, "python -c 'print(1)'") == "1\n"
    python, python3 = sh(sandbox, "python --version"), sh(sandbox, "python3 --version")
    assert python == python3 and python.startswith("Python 3.")
    same = "test $(readlink -f $(command -v python)) = $(readlink -f $(command -v python3))"
    sh(sandbox, same)


def test_pip_install_user_installs_a_local_wheel(offline: Sandbox) -> None:
    sh(offline, f"pip install --user --no-index /tmp/{WHEEL_NAME}")
    assert sh(offline, "cd / && python -c 'import sandbar_probe; print(sandbar_probe.VALUE)'") == (
        "from the wheel\n"
    )
    assert "/home/daytona/.local/lib/python3" in sh(
        offline, "python -c 'import sandbar_probe; print(sandbar_probe.__file__)'"
    )
    sh(offline, "pip uninstall -y sandbar-probe")
    # Without --user too: the system's site is not the user's to write, so pip uses theirs.
    assert "Defaulting to user installation" in sh(
        offline, f"pip install --no-index /tmp/{WHEEL_NAME}"
    )
    sh(offline, "cd / && python -c 'import sandbar_probe'")
    sh(offline, "pip uninstall -y sandbar-probe")


def test_a_venv_gets_its_own_pip_and_packages(offline: Sandbox) -> None:
    sh(offline, "python -m venv ~/env && ~/env/bin/pip install --no-index /tmp/" + WHEEL_NAME)
    assert sh(offline, "~/env/bin/python -c 'import sandbar_probe, sys; print(sys.prefix)'") == (
        "/home/daytona/env\n"
    )
    missing = offline.process.exec("python -c 'import sandbar_probe'")
    assert missing.exit_code != 0 and "ModuleNotFoundError" in missing.result


def test_git_curl_less_and_an_editor_are_there(sandbox: Sandbox) -> None:
    sh(sandbox, "rm -rf repo && git init -q repo && git -C repo status --short")
    assert sh(sandbox, "curl --version").startswith("curl ")
    assert sh(sandbox, "less --version").startswith("less ")
    sh(sandbox, "command -v vi && command -v nano && command -v ps && command -v bash")
    assert sh(sandbox, "vim --version").startswith("VIM - Vi IMproved")


def test_code_run_runs_javascript_with_the_images_node(
    toolbox: httpx.Client, sandbox: Sandbox
) -> None:
    body = {"code": "console.log(6 * 7, typeof process.version)", "language": "javascript"}
    response = toolbox.post(f"/{sandbox.id}/process/code-run", json=body).json()
    assert (response["exitCode"], response["result"]) == (0, "42 string\n")


def test_apt_cannot_install_inside_a_sandbox(offline: Sandbox) -> None:
    # The image's files belong to host root, which the sandbox's user namespace does
    # not map; the sandbox user is not root. The README says so.
    result = offline.process.exec("apt-get install -y hello")
    assert result.exit_code != 0
    assert "are you root?" in result.result or "Permission denied" in result.result


def test_the_sandbox_sees_the_image_not_the_host(
    engine: EngineServer, api: httpx.Client, toolbox: httpx.Client
) -> None:
    default = image.DefaultImage(Path(IMAGE_DIR))
    assert default.info() is not None
    assert not Path("/", image.MARKER).exists()  # only the image has it
    sandbox = create(api)
    try:
        marker = run(toolbox, sandbox["id"], f"cat /{image.MARKER}")["result"]
        assert marker == f"sandbar default image {default.key} (Debian {image.SUITE})\n"
        version = run(toolbox, sandbox["id"], "cat /etc/debian_version")["result"]
        assert version == (default.rootfs / "etc/debian_version").read_text()
    finally:
        api.delete(f"/sandbox/{sandbox['id']}")


def test_the_default_snapshot_is_listed_with_its_image_and_size(api: httpx.Client) -> None:
    default = image.DefaultImage(Path(IMAGE_DIR))
    info = default.info()
    assert info is not None
    listed = {s["name"]: s for s in api.get("/snapshots", params={"limit": 200}).json()["items"]}
    snapshot = listed["sandbar-default"]
    assert snapshot["state"] == "active"
    assert snapshot["imageName"] == f"sandbar/{default.key}"
    assert snapshot["size"] == round(info["sizeBytes"] / 2**30, 6) > 0.1


def _wait_active(api: httpx.Client, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (snapshot := api.get(f"/snapshots/{name}").json())["state"] not in TERMINAL:
        assert time.monotonic() < deadline, snapshot
        time.sleep(0.1)
    assert snapshot["state"] == "active", snapshot["errorReason"]
    return snapshot


def test_a_captured_sandbox_keeps_what_it_changed_deleted_and_made(
    engine: EngineServer, api: httpx.Client, toolbox: httpx.Client, tmp_path: Path
) -> None:
    home = tmp_path / "home" / "daytona"
    home.mkdir(parents=True)
    for name in ("gone.txt", "changed.txt"):
        (home / name).write_text("from the snapshot\n")
    base = f"base-{uuid.uuid4().hex[:8]}"
    api.post("/snapshots", json={"name": base, "imageName": f"dir:{tmp_path}"})
    _wait_active(api, base)
    captured = f"captured-{uuid.uuid4().hex[:8]}"
    origin = create(api, snapshot=base)
    try:
        edits = "rm gone.txt && echo mine > changed.txt && mkdir -p new/deep && echo x > new/deep/f"
        assert run(toolbox, origin["id"], edits)["exitCode"] == 0
        api.post(f"/sandbox/{origin['id']}/snapshot", json={"name": captured})
        snapshot = _wait_active(api, captured)
        root = engine.data_dir / "engine" / "snapshots" / snapshot["id"] / "rootfs"
        files = sorted(
            str(p.relative_to(root / "home/daytona")) for p in (root / "home/daytona").rglob("*")
        )
        assert files == ["changed.txt", "new", "new/deep", "new/deep/f"]
        assert (root / "home/daytona/changed.txt").read_text() == "mine\n"
        assert (home / "changed.txt").read_text() == "from the snapshot\n"
    finally:
        api.delete(f"/sandbox/{origin['id']}")
        api.delete(f"/snapshots/{captured}")
        api.delete(f"/snapshots/{base}")


def test_a_captured_default_sandbox_links_the_images_files(
    engine: EngineServer, api: httpx.Client, toolbox: httpx.Client
) -> None:
    captured = f"captured-{uuid.uuid4().hex[:8]}"
    origin = create(api)
    try:
        run(toolbox, origin["id"], "echo mine > notes.txt")
        api.post(f"/sandbox/{origin['id']}/snapshot", json={"name": captured})
        snapshot = _wait_active(api, captured)
        root = engine.data_dir / "engine" / "snapshots" / snapshot["id"] / "rootfs"
        assert (root / "home/daytona/notes.txt").read_text() == "mine\n"
        python = image.DefaultImage(Path(IMAGE_DIR)).rootfs / "usr/bin/python3.11"
        assert (root / "usr/bin/python3.11").stat().st_ino == python.stat().st_ino
    finally:
        api.delete(f"/sandbox/{origin['id']}")
        api.delete(f"/snapshots/{captured}")


def test_the_default_snapshots_build_log_is_its_images(api: httpx.Client) -> None:
    default = api.get("/snapshots/sandbar-default").json()
    log = api.get(f"/snapshots/{default['id']}/build-logs").text
    assert log == image.DefaultImage(Path(IMAGE_DIR)).log_path.read_text()
    assert log.startswith("$ debootstrap --variant=minbase --include=")
    assert "I: Base system installed successfully." in log


def test_the_dashboards_snapshots_page_lists_the_default_image(
    daytona_engine: EngineServer, viewer_client: Any
) -> None:
    default = image.DefaultImage(Path(IMAGE_DIR))
    info = default.info()
    assert info is not None
    response = viewer_client.get(reverse("snapshots"), {"q": "sandbar-default"})
    assert response.status_code == 200
    html = response.content.decode()
    assert ">sandbar-default</a>" in html
    assert f"sandbar/{default.key}" in html
    # The engine reports GiB to three decimals; the page shows it in the unit that fits.
    assert gib_size(round(info["sizeBytes"] / 2**30, 6)) in html


async def test_a_home_kept_on_the_disk_moves_into_the_layer_on_the_first_start(
    tmp_path: Path,
) -> None:
    # A default sandbox made before the image had its home on the disk itself.
    lower = tmp_path / "image"
    (lower / "home" / "daytona").mkdir(parents=True)
    (lower / "etc").mkdir()
    disk = tmp_path / "disk"
    (disk / "home" / "notes").mkdir(parents=True)
    (disk / "home" / "notes" / "todo.txt").write_text("kept\n")
    layer = RootLayer.beside(disk, str(lower))
    try:
        await layer.mount(owner_uid=61999)
        moved = layer.merged / "home" / "daytona" / "notes" / "todo.txt"
        assert moved.read_text() == "kept\n"
        assert moved.stat().st_uid == 61999
    finally:
        layer.unmount()
    (disk / "home").mkdir()  # as Disk.mount makes it again on the next start
    try:
        await layer.mount(owner_uid=61999)  # not the first start: nothing moves again
        assert (layer.merged / "home" / "daytona" / "notes" / "todo.txt").exists()
    finally:
        layer.unmount()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_engine_without_its_image_refuses_to_start_and_names_the_command(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "SANDBAR_IMAGE_DIR": str(tmp_path / "no-images")}
    argv = [sys.executable, "-m", "dashboard.engine", "--port", str(_free_port())]
    result = subprocess.run(
        [*argv, "--data-dir", str(tmp_path / "data")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "the default image is not built" in result.stderr
    assert "python manage.py engine --build-image" in result.stderr
    assert not (tmp_path / "data" / "engine" / "api-key").exists()


class _Missing(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


def test_a_failed_build_leaves_no_image_and_no_work_directory(tmp_path: Path) -> None:
    # A mirror on loopback that has nothing: debootstrap really runs, and fails.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Missing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = image.DefaultImage(tmp_path / "images")
    out = io.StringIO()
    try:
        with pytest.raises(image.ImageError, match="debootstrap exited with status"):
            image.build(target, out, mirror=f"http://127.0.0.1:{server.server_port}/debian")
    finally:
        server.shutdown()
        server.server_close()
    assert target.info() is None
    assert not target.path.exists()
    assert list(target.directory.glob(".build-*")) == []
    assert "building the default image" in out.getvalue()
    assert "debootstrap" in target.log_path.read_text()


def test_an_unreachable_mirror_is_named_before_anything_is_built(tmp_path: Path) -> None:
    target = image.DefaultImage(tmp_path / "images")
    closed = f"http://127.0.0.1:{_free_port()}/debian"
    with pytest.raises(image.ImageError, match="unreachable"):
        image.build(target, io.StringIO(), mirror=closed)
    assert not target.path.exists()


def test_two_builds_at_once_build_one_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # debootstrap takes minutes; what matters here is the lock and the second look.
    calls: list[int] = []
    started = threading.Event()

    def slow_build(target: image.DefaultImage, out: object, mirror: object) -> dict[str, int]:
        calls.append(threading.get_ident())
        started.set()
        threading.Event().wait(0.5)  # the second caller arrives while this one works
        target.rootfs.mkdir(parents=True)
        (target.path / "image.json").write_text('{"sizeBytes": 1}')
        return {"sizeBytes": 1}

    monkeypatch.setattr(image, "_build_locked", slow_build)
    target = image.DefaultImage(tmp_path / "images")
    results: list[dict[str, object]] = []
    first = threading.Thread(target=lambda: results.append(image.build(target, io.StringIO())))
    first.start()
    started.wait(5)
    waiting = io.StringIO()
    results.append(image.build(target, waiting))
    first.join(5)
    assert len(calls) == 1
    assert results == [{"sizeBytes": 1}, {"sizeBytes": 1}]
    assert "another process is building the default image" in waiting.getvalue()


def test_the_progress_bar_reports_phases_without_a_terminal() -> None:
    out = io.StringIO()
    bar = image.ProgressBar(out, expected=4)
    lines = ("I: Retrieving libc6 2.36", "I: Validating libc6 2.36", "I: Unpacking libc6...")
    for line in lines:
        match = image.STEP.match(line)
        assert match is not None
        bar.step(match.group(1).lower(), match.group(2))
    bar.close()
    shown = out.getvalue().splitlines()
    assert [line.split()[-1] for line in shown] == [
        "downloading...", "downloading...", "unpacking...",
    ]  # fmt: skip
    assert shown[-1].split()[0] == "75%"
