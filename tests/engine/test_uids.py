"""Each sandbox runs as a host uid of its own; volumes stay shared between them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboard.engine.runtime import ids
from tests.engine.conftest import create, run
from tests.engine_server import EngineServer


def host_process(marker: str) -> tuple[int, int]:
    """The host pid and uid of the process whose command line starts with ``marker``."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(marker.encode()):
                    status = Path(f"/proc/{pid}/status").read_text()
                    uid = next(line for line in status.splitlines() if line.startswith("Uid:"))
                    return int(pid), int(uid.split()[1])
            except OSError:
                continue
        time.sleep(0.02)
    raise AssertionError(f"no host process {marker}")


def probe(toolbox: httpx.Client, sandbox_id: str) -> tuple[int, int]:
    """Start a long sleep in the sandbox; its host pid and uid."""
    marker = f"sandbar-probe-{uuid.uuid4().hex[:12]}"
    run(toolbox, sandbox_id, f"(exec -a {marker} sleep 60) >/dev/null 2>&1 &")
    return host_process(marker)


@pytest.fixture
def pair(api: httpx.Client) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    first, second = create(api, autoStopInterval=0), create(api, autoStopInterval=0)
    yield first, second
    for sandbox in (first, second):
        api.delete(f"/sandbox/{sandbox['id']}")


def test_two_sandboxes_run_as_different_host_uids(
    toolbox: httpx.Client, pair: tuple[dict[str, Any], dict[str, Any]], engine: EngineServer
) -> None:
    (_, first_uid), (_, second_uid) = (probe(toolbox, sandbox["id"]) for sandbox in pair)
    assert first_uid != second_uid
    for uid in (first_uid, second_uid):
        assert engine.uid_base < uid <= engine.uid_base + engine.uid_count


def test_neither_sees_signals_nor_traces_the_other(
    toolbox: httpx.Client, pair: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    first, second = pair
    first_pid, first_uid = probe(toolbox, first["id"])
    marker = f"sandbar-other-{uuid.uuid4().hex[:12]}"
    run(toolbox, second["id"], f"(exec -a {marker} sleep 60) >/dev/null 2>&1 &")
    second_pid, _ = host_process(marker)
    # Not in its process list (separate pid namespaces) ...
    listing = run(toolbox, first["id"], "ps -eo args")["result"]
    assert marker not in listing
    # ... and even given the host pid, the first sandbox's uid may not signal it.
    attempt = subprocess.run(
        ["setpriv", f"--reuid={first_uid}", f"--regid={first_uid}", "--clear-groups",
         "kill", "-0", str(second_pid)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert attempt.returncode != 0
    assert "not permitted" in attempt.stderr
    trace = (
        "import ctypes, errno; libc = ctypes.CDLL(None, use_errno=True); "
        f"print(libc.ptrace(16, {second_pid}, 0, 0), errno.errorcode[ctypes.get_errno()])"
    )  # 16: PTRACE_ATTACH
    traced = subprocess.run(
        ["setpriv", f"--reuid={first_uid}", f"--regid={first_uid}", "--clear-groups",
         "/usr/bin/python3", "-c", trace],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert traced.stdout.strip() == "-1 EPERM", traced.stderr
    assert os.path.exists(f"/proc/{first_pid}")


def test_a_sandbox_keeps_its_uid_across_stop_start_and_archive(
    api: httpx.Client, toolbox: httpx.Client
) -> None:
    sandbox = create(api, autoStopInterval=0)
    try:
        _, before = probe(toolbox, sandbox["id"])
        assert api.post(f"/sandbox/{sandbox['id']}/stop").status_code == 200
        assert api.post(f"/sandbox/{sandbox['id']}/archive").status_code == 200
        assert api.post(f"/sandbox/{sandbox['id']}/start").status_code == 200
        _, after = probe(toolbox, sandbox["id"])
        assert after == before
        # Its home is still its own after the restart.
        assert run(toolbox, sandbox["id"], "touch ~/still-mine && echo ok")["result"] == "ok\n"
    finally:
        api.delete(f"/sandbox/{sandbox['id']}")


def test_a_deleted_sandbox_gives_its_uid_back(
    api: httpx.Client, toolbox: httpx.Client, engine: EngineServer
) -> None:
    sandbox = create(api, autoStopInterval=0)
    pid, uid = probe(toolbox, sandbox["id"])
    assert api.delete(f"/sandbox/{sandbox['id']}").status_code == 200
    with sqlite3.connect(engine.data_dir / "engine" / "engine.sqlite3") as db:
        live = {
            row[0] for row in db.execute("SELECT uid FROM sandboxes WHERE state != 'destroyed'")
        }
    assert uid not in live
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{pid}")


def test_files_in_a_shared_volume_belong_to_whichever_sandbox_reads_them(
    api: httpx.Client, toolbox: httpx.Client, engine: EngineServer
) -> None:
    volume = api.post("/volumes", json={"name": f"uids-{uuid.uuid4().hex[:8]}"}).json()
    mount = {"volumeId": volume["id"], "mountPath": "/home/daytona/shared"}
    writer = create(api, volumes=[mount], autoStopInterval=0)
    reader = create(api, volumes=[mount], autoStopInterval=0)
    try:
        run(toolbox, writer["id"], "echo one > ~/shared/notes.txt && mkdir ~/shared/dir")
        seen = run(toolbox, reader["id"], "stat -c '%u %U' ~/shared/notes.txt ~/shared/dir")
        assert seen["result"] == "1000 daytona\n1000 daytona\n"
        appended = run(
            toolbox, reader["id"], "echo two >> ~/shared/notes.txt && touch ~/shared/dir/x"
        )
        assert appended["exitCode"] == 0, appended["result"]
        assert run(toolbox, writer["id"], "cat ~/shared/notes.txt")["result"] == "one\ntwo\n"
        # On the host the files belong to the range's shared owner, not to either sandbox.
        on_disk = engine.data_dir / "engine" / "volumes" / volume["id"] / "notes.txt"
        assert on_disk.stat().st_uid == engine.uid_base
    finally:
        for sandbox in (writer, reader):
            api.delete(f"/sandbox/{sandbox['id']}")
        api.delete(f"/volumes/{volume['id']}")


def test_two_engines_cannot_hold_overlapping_uid_ranges(tmp_path: Path) -> None:
    first = ids.UidRange(500_000, 10)
    held = ids.claim(first, "/data/one", registry=tmp_path)
    try:
        with pytest.raises(ids.UidRangeTaken, match="/data/one"):
            ids.claim(ids.UidRange(500_015, 10), "/data/two", registry=tmp_path)
        apart = ids.claim(ids.UidRange(500_021, 10), "/data/three", registry=tmp_path)
        ids.release(apart, ids.UidRange(500_021, 10), registry=tmp_path)
    finally:
        ids.release(held, first, registry=tmp_path)
    # Released (or left by an engine that died, holding no lock): free again.
    (tmp_path / "500015-500035").write_text("/data/gone")
    again = ids.claim(ids.UidRange(500_015, 10), "/data/two", registry=tmp_path)
    ids.release(again, ids.UidRange(500_015, 10), registry=tmp_path)
