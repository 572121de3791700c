"""Toolbox files over raw HTTP: every operation, the multipart shapes, and escape attempts."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from daytona import Sandbox

from tests.engine.conftest import run


@pytest.fixture
def sid(sandbox: Sandbox) -> str:
    return sandbox.id


def upload(toolbox: httpx.Client, sid: str, path: str, content: bytes) -> httpx.Response:
    return toolbox.post(
        f"/{sid}/files/bulk-upload",
        files={"files[0].path": (None, path), "files[0].file": (path, content)},
    )


def download(toolbox: httpx.Client, sid: str, *paths: str) -> httpx.Response:
    return toolbox.post(f"/{sid}/files/bulk-download", json={"paths": list(paths)})


def test_bulk_download_has_the_exact_multipart_shape(toolbox: httpx.Client, sid: str) -> None:
    assert upload(toolbox, sid, "shape/one.txt", b"first").status_code == 200
    response = download(toolbox, sid, "shape/one.txt", "shape/missing.txt")
    assert response.status_code == 200
    media_type, _, boundary = response.headers["content-type"].partition("; boundary=")
    assert media_type == "multipart/form-data" and boundary
    body = response.content
    assert body.endswith(f"--{boundary}--\r\n".encode())
    parts = body.split(f"--{boundary}".encode())[1:-1]
    file_head, _, file_data = parts[0].partition(b"\r\n\r\n")
    assert b'Content-Disposition: form-data; name="file"; filename="shape/one.txt"' in file_head
    assert file_data == b"first\r\n"
    error_head, _, error_data = parts[1].partition(b"\r\n\r\n")
    assert b'name="error"; filename="shape/missing.txt"' in error_head
    assert json.loads(error_data)["statusCode"] == 404


def test_folders_info_move_and_recursive_delete(toolbox: httpx.Client, sid: str) -> None:
    assert (
        toolbox.post(f"/{sid}/files/folder", params={"path": "tree/a/b", "mode": "750"}).status_code
        == 201
    )
    info = toolbox.get(f"/{sid}/files/info", params={"path": "tree/a/b"}).json()
    assert (info["isDir"], info["permissions"], info["name"]) == (True, "0750", "b")
    upload(toolbox, sid, "tree/a/b/file.txt", b"x")
    moved = toolbox.post(
        f"/{sid}/files/move",
        params={"source": "tree/a/b/file.txt", "destination": "tree/moved.txt"},
    )
    assert moved.status_code == 200
    names = [
        entry["name"] for entry in toolbox.get(f"/{sid}/files", params={"path": "tree"}).json()
    ]
    assert names == ["a", "moved.txt"]
    refused = toolbox.delete(f"/{sid}/files", params={"path": "tree"})
    assert refused.status_code == 400
    assert (
        toolbox.delete(f"/{sid}/files", params={"path": "tree", "recursive": "true"}).status_code
        == 204
    )
    assert toolbox.get(f"/{sid}/files/info", params={"path": "tree"}).status_code == 404


def test_search_by_name_and_find_by_content(toolbox: httpx.Client, sid: str) -> None:
    upload(toolbox, sid, "proj/src/main.py", b"print('needle')\n")
    upload(toolbox, sid, "proj/src/util.py", b"x = 1\n")
    upload(toolbox, sid, "proj/README.md", b"no match\nneedle here\n")
    found = toolbox.get(f"/{sid}/files/search", params={"path": "proj", "pattern": "*.py"}).json()
    assert sorted(found["files"]) == [
        "/home/daytona/proj/src/main.py",
        "/home/daytona/proj/src/util.py",
    ]
    matches = toolbox.get(f"/{sid}/files/find", params={"path": "proj", "pattern": "needle"}).json()
    assert sorted((m["file"], m["line"]) for m in matches) == [
        ("/home/daytona/proj/README.md", 2),
        ("/home/daytona/proj/src/main.py", 1),
    ]


def test_dotdot_never_leaves_the_sandbox(toolbox: httpx.Client, sid: str, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host only")
    climb = "../" * 12 + str(secret).lstrip("/")
    response = download(toolbox, sid, climb)
    assert b"host only" not in response.content
    assert b'name="error"' in response.content
    target = f"/tmp/sandbar-escape-{uuid.uuid4().hex}.txt"
    assert upload(toolbox, sid, "../" * 12 + target.lstrip("/"), b"escaped?").status_code == 200
    assert not Path(target).exists()
    assert run(toolbox, sid, f"cat {target}")["result"] == "escaped?"


def test_symlinks_resolve_inside_the_sandbox(
    toolbox: httpx.Client, sid: str, tmp_path: Path
) -> None:
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    os.chmod(tmp_path, 0o755)  # noqa: S103 -- readable, so only isolation can stop it
    (host_dir / "secret.txt").write_text("host only")
    run(toolbox, sid, f"ln -sfn {host_dir} ~/to-host; ln -sfn /etc/passwd ~/passwd-link")
    response = download(toolbox, sid, "to-host/secret.txt", "passwd-link")
    assert b"host only" not in response.content
    assert b"daytona:x:1000" in response.content  # the sandbox's /etc/passwd, not the host's
    assert upload(toolbox, sid, "to-host/planted.txt", b"planted").status_code in (400, 403, 404)
    assert not (host_dir / "planted.txt").exists()


def test_proc_magic_links_are_refused(toolbox: httpx.Client, sid: str) -> None:
    response = download(toolbox, sid, "/proc/1/root/etc/passwd", "/proc/self/root/etc/hostname")
    assert response.content.count(b'name="error"') == 2


def test_writes_obey_the_sandbox_user_permissions(toolbox: httpx.Client, sid: str) -> None:
    for path in ("/usr/planted", "/etc/planted", "/planted"):
        assert upload(toolbox, sid, path, b"x").status_code in (400, 403)
    run(toolbox, sid, "mkdir -p locked && chmod 500 locked")
    assert upload(toolbox, sid, "locked/inside.txt", b"x").status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "/files/info", {}),
        ("GET", "/files/info", {"path": "does/not/exist"}),
        ("GET", "/files", {"path": "does/not/exist"}),
        ("DELETE", "/files", {"path": "/"}),
        ("POST", "/files/folder", {"path": "x", "mode": "999"}),
        ("POST", "/files/move", {"source": "nothing-here"}),
        ("GET", "/files/search", {"path": "."}),
        ("GET", "/files/download", {"path": "/home/daytona"}),
        ("GET", "/files", {"path": "\x00"}),
    ],
)
def test_bad_file_requests_are_4xx_json(
    toolbox: httpx.Client, sid: str, method: str, path: str, params: dict[str, Any]
) -> None:
    response = toolbox.request(method, f"/{sid}{path}", params=params)
    assert 400 <= response.status_code < 500
    assert "message" in response.json()
