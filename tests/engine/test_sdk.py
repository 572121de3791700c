"""The official daytona SDK, unmodified, against the engine: the issue's Done-when list."""

from __future__ import annotations

import httpx
from daytona import CreateSandboxFromSnapshotParams, Daytona, Sandbox, SandboxState


def test_it_creates_a_default_sandbox_that_is_started_with_a_toolbox_url(
    daytona: Daytona, sandbox: Sandbox, engine
) -> None:
    assert sandbox.state == SandboxState.STARTED
    assert sandbox.toolbox_proxy_url == engine.toolbox_url
    assert sandbox.snapshot == "sandbar-default"
    assert (sandbox.cpu, sandbox.memory, sandbox.disk) == (1, 1, 3)


def test_it_creates_a_sandbox_from_params_with_name_env_and_labels(daytona: Daytona) -> None:
    params = CreateSandboxFromSnapshotParams(
        name="sdk-named", env_vars={"GREETING": "hello"}, labels={"team": "a"}, auto_stop_interval=0
    )
    created = daytona.create(params)
    try:
        assert created.name == "sdk-named"
        assert created.labels["team"] == "a"
        assert created.auto_stop_interval == 0
        assert created.process.exec("echo $GREETING").result == "hello\n"
    finally:
        created.delete()


def test_it_gets_a_sandbox_by_id_and_by_name(daytona: Daytona, sandbox: Sandbox) -> None:
    assert daytona.get(sandbox.id).id == sandbox.id
    assert daytona.get(sandbox.name).id == sandbox.id


def test_it_lists_the_sandbox(daytona: Daytona, sandbox: Sandbox) -> None:
    assert sandbox.id in {item.id for item in daytona.list()}


def test_process_exec_returns_combined_output_and_exit_code(sandbox: Sandbox) -> None:
    response = sandbox.process.exec("echo out; echo err >&2; exit 3")
    assert response.exit_code == 3
    assert response.result == "out\nerr\n"


def test_process_exec_honours_cwd_and_env(sandbox: Sandbox) -> None:
    response = sandbox.process.exec("mkdir -p w && cd w && pwd", cwd="/home/daytona")
    assert response.result == "/home/daytona/w\n"
    response = sandbox.process.exec("pwd; echo $X", cwd="/home/daytona/w", env={"X": "y"})
    assert response.result == "/home/daytona/w\ny\n"


def test_code_run_runs_python(sandbox: Sandbox) -> None:
    response = sandbox.process.code_run("import sys\nprint(6 * 7, sys.argv[1:])")
    assert response.exit_code == 0
    assert response.result == "42 []\n"


def test_files_upload_download_and_list(sandbox: Sandbox) -> None:
    sandbox.fs.upload_file(b"payload \x00\xff", "sdk-files/a.bin")
    assert sandbox.fs.download_file("sdk-files/a.bin") == b"payload \x00\xff"
    names = [f.name for f in sandbox.fs.list_files("sdk-files")]
    assert names == ["a.bin"]
    info = sandbox.fs.get_file_info("sdk-files/a.bin")
    assert (info.size, info.is_dir, info.owner) == (10, False, "daytona")


def test_stop_start_archive_and_delete(daytona: Daytona, engine) -> None:
    created = daytona.create()
    created.fs.upload_file(b"kept", "kept.txt")
    created.stop()
    assert created.state == SandboxState.STOPPED
    created.start()
    assert created.state == SandboxState.STARTED
    assert created.fs.download_file("kept.txt") == b"kept"
    created.stop()
    created.archive()
    assert created.state == SandboxState.ARCHIVED
    created.start()
    assert created.process.exec("cat kept.txt").result == "kept"
    created.delete()
    response = httpx.get(
        f"{engine.api_url}/sandbox/{created.id}",
        headers={"Authorization": f"Bearer {engine.api_key}"},
    )
    assert response.status_code == 404
