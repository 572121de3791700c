"""A pull cut short by an engine crash ends in error at the next start, and its partial
files go at once, not when the snapshot is deleted."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from tests.connections.servers import silent_port
from tests.engine.test_oci_images import commands_naming, unique, wait_for_state
from tests.engine_server import start_engine


def pids_naming(text: str) -> list[int]:
    """This machine's processes whose command line contains ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
    return found


def test_a_pull_cut_short_by_a_crash_ends_in_error_and_leaves_only_its_log(
    tmp_path: Path,
) -> None:
    server = start_engine(tmp_path / "data")
    reference = ""
    try:
        with silent_port() as port:  # a registry that accepts and never answers
            reference = f"127.0.0.1:{port}/x/y:1.0"
            with server.client() as api:
                created = api.post(
                    "/snapshots", json={"name": unique("cut"), "imageName": reference}
                )
                assert created.status_code == 200, created.text
                snapshot_id = created.json()["id"]
                wait_for_state(api, snapshot_id, "pulling")
            folder = server.data_dir / "engine" / "snapshots" / snapshot_id
            assert (folder / "rootfs").is_dir()  # what a pull has made by now
            server.stop(signal.SIGKILL)  # no clean shutdown to tidy up after it
            server.start()
        with server.client() as api:
            after = api.get(f"/snapshots/{snapshot_id}").json()
            assert after["state"] == "error"
            assert "interrupted by an engine restart" in after["errorReason"]
            assert sorted(p.name for p in folder.iterdir()) == ["build.log"]
            assert "interrupted by an engine restart" in (folder / "build.log").read_text()
            assert api.delete(f"/snapshots/{snapshot_id}").status_code == 200
    finally:
        server.stop()
        # The crashed engine's skopeo saw its registry close; it must not outlive the test.
        deadline = time.monotonic() + 10
        while reference and commands_naming(reference) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in pids_naming(reference) if reference else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
