"""Files and exec details SDK code relies on: replace in files, each bulk-download part's
Content-Length, and the daemon's exec timeout error."""

from __future__ import annotations

import email.parser
import email.policy

import httpx
import pytest
from daytona import DaytonaProcessExecutionTimeoutError, Sandbox
from daytona.common.filesystem import DownloadProgress


def test_replace_in_files_rewrites_each_file_and_reports_each_one(sandbox: Sandbox) -> None:
    sandbox.fs.upload_file(b"colour colour and more colour\n", "replace/a.txt")
    sandbox.fs.upload_file(b"no match here\n", "replace/b.txt")
    sandbox.process.exec("chmod 640 replace/a.txt")
    results = sandbox.fs.replace_in_files(
        ["replace/a.txt", "replace/b.txt", "replace/missing.txt"], "colour", "color"
    )
    assert [(r.file, r.success) for r in results] == [
        ("replace/a.txt", True),
        ("replace/b.txt", True),
        ("replace/missing.txt", False),
    ]
    assert results[0].error is None
    assert "no such file" in (results[2].error or "")
    assert sandbox.fs.download_file("replace/a.txt") == b"color color and more color\n"
    assert sandbox.fs.download_file("replace/b.txt") == b"no match here\n"
    assert sandbox.fs.get_file_info("replace/a.txt").permissions == "0640"  # same file, same mode


def test_replace_can_shrink_and_grow_a_file_and_handles_unicode(sandbox: Sandbox) -> None:
    sandbox.fs.upload_file(("ab" * 1000 + "é").encode(), "replace/u.txt")
    sandbox.fs.replace_in_files(["replace/u.txt"], "ab", "x")
    assert sandbox.fs.download_file("replace/u.txt").decode() == "x" * 1000 + "é"
    sandbox.fs.replace_in_files(["replace/u.txt"], "é", "ü longer")
    assert sandbox.fs.download_file("replace/u.txt").decode() == "x" * 1000 + "ü longer"


def test_replace_refuses_what_it_cannot_edit_per_file(
    toolbox: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.fs.create_folder("replace/dir", "755")
    response = toolbox.post(
        f"/{sandbox.id}/files/replace",
        json={"files": ["replace/dir", "/etc/passwd"], "pattern": "a", "newValue": "b"},
    )
    assert response.status_code == 200
    results = response.json()
    assert [r["success"] for r in results] == [False, False]
    assert "is a directory" in results[0]["error"].lower()
    assert "permission denied" in results[1]["error"]


@pytest.mark.parametrize(
    "body",
    [
        {"files": ["a"], "pattern": ""},
        {"files": ["a"]},
        {"files": "a", "pattern": "x", "newValue": "y"},
        {"files": [1], "pattern": "x", "newValue": "y"},
        {"files": ["a"], "pattern": "x", "newValue": 5},
        {"files": ["a"], "pattern": "x", "newValue": "y", "extra": 1},
    ],
)
def test_a_bad_replace_request_is_a_400(
    toolbox: httpx.Client, sandbox: Sandbox, body: dict
) -> None:
    response = toolbox.post(f"/{sandbox.id}/files/replace", json=body)
    assert response.status_code == 400
    assert response.json()["message"]


def test_replace_with_malformed_json_is_a_400(toolbox: httpx.Client, sandbox: Sandbox) -> None:
    response = toolbox.post(f"/{sandbox.id}/files/replace", content=b"{nope")
    assert response.status_code == 400


def _parts(response: httpx.Response) -> list[email.message.Message]:
    raw = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode() + response.content
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    return list(message.iter_parts())


def test_every_bulk_download_part_carries_its_own_content_length(
    toolbox: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.fs.upload_file(b"x" * 70000, "bulk/big.bin")
    sandbox.fs.upload_file(b"", "bulk/empty.bin")
    response = toolbox.post(
        f"/{sandbox.id}/files/bulk-download",
        json={"paths": ["bulk/big.bin", "bulk/missing", "bulk/empty.bin"]},
    )
    assert response.status_code == 200
    parts = _parts(response)
    assert [p.get_param("name", header="content-disposition") for p in parts] == [
        "file",
        "error",
        "file",
    ]
    for part in parts:
        body = part.get_payload(decode=True)
        assert int(part["content-length"]) == len(body)
    assert len(parts[0].get_payload(decode=True)) == 70000
    assert b"FILE_NOT_FOUND" in parts[1].get_payload(decode=True)


def test_the_sdk_download_stream_reports_the_total_from_content_length(sandbox: Sandbox) -> None:
    sandbox.fs.upload_file(b"y" * 300_000, "bulk/progress.bin")
    seen: list[DownloadProgress] = []
    data = b"".join(sandbox.fs.download_file_stream("bulk/progress.bin", on_progress=seen.append))
    assert len(data) == 300_000
    assert seen and {p.total_bytes for p in seen} == {300_000}
    assert seen[-1].bytes_received == 300_000


def test_an_exec_past_its_timeout_raises_the_daemons_timeout_error(sandbox: Sandbox) -> None:
    with pytest.raises(DaytonaProcessExecutionTimeoutError, match="command execution timeout"):
        sandbox.process.exec("sleep 30", timeout=1)


def test_the_exec_timeout_body_is_the_daemons(toolbox: httpx.Client, sandbox: Sandbox) -> None:
    response = toolbox.post(
        f"/{sandbox.id}/process/execute", json={"command": "sleep 30", "timeout": 1}
    )
    assert response.status_code == 408
    body = response.json()
    assert (body["message"], body["code"], body["source"]) == (
        "command execution timeout",
        "PROCESS_EXECUTION_TIMEOUT",
        "DAYTONA_DAEMON",
    )
    code_run = toolbox.post(
        f"/{sandbox.id}/process/code-run",
        json={"code": "import time; time.sleep(30)", "timeout": 1},
    )
    assert code_run.status_code == 408
    assert code_run.json()["message"] == "command execution timeout"
