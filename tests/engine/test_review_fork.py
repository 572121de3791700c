"""A fork holds its parent only while the disk is cloned, and boots on its own.

The in-process engine of ``test_failed_create`` is used where the fork's boot must be
held or made to fail on demand; everything else is the real runtime on this host.
"""

from __future__ import annotations

import asyncio
import glob
import signal
import sqlite3
from pathlib import Path

import httpx
import pytest

from dashboard.engine.lifecycle import CreateRequest, Engine
from dashboard.engine.runtime import Runtime, SandboxSpec
from dashboard.engine.runtime.cgroups import SandboxCgroup
from tests.engine.conftest import create, run
from tests.engine.test_failed_create import engine as in_process_engine  # noqa: F401
from tests.engine.test_failed_create import fail
from tests.engine_server import start_engine


async def test_the_parent_is_started_and_free_while_its_fork_boots(
    in_process_engine: Engine,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = in_process_engine
    parent = await engine.create(CreateRequest(memory=2))
    assert parent.state == "started"
    booting, release = asyncio.Event(), asyncio.Event()
    real_start = Runtime.start

    async def held_start(runtime: Runtime, spec: SandboxSpec) -> None:
        booting.set()
        await release.wait()
        await real_start(runtime, spec)

    monkeypatch.setattr(Runtime, "start", held_start)
    forking = asyncio.create_task(engine.fork(parent.id, None))
    try:
        await asyncio.wait_for(booting.wait(), 60)
        assert engine.find(parent.id).state == "started"
        # An action on the parent goes through (it was a 409 while the fork booted).
        resized = await engine.resize(parent.id, cpu=None, memory=1, disk=None)
        assert (resized.state, resized.memory) == ("started", 1)
        (child,) = engine.forks.children(parent.id, include_destroyed=False)
        assert child.state == "creating"
    finally:
        release.set()
        child = await asyncio.wait_for(forking, 60)
    assert child.state == "started"
    assert engine.runtime.is_running(child.id)
    for sandbox_id in (child.id, parent.id):
        await engine.delete(sandbox_id)


async def test_a_fork_that_does_not_boot_is_an_error_and_can_be_recovered(
    in_process_engine: Engine,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = in_process_engine
    parent = await engine.create(CreateRequest(memory=2))
    monkeypatch.setattr(SandboxCgroup, "create", fail)
    child = await engine.fork(parent.id, None)
    assert child.state == "error"
    assert "the fork did not start" in (child.error_reason or "")
    assert "injected failure" in (child.error_reason or "")
    assert child.recoverable
    assert engine.find(parent.id).state == "started"
    monkeypatch.undo()
    # Its disk is the parent's clone, kept: a recover boots it.
    recovered = await engine.recover(child.id)
    assert recovered.state == "started"
    assert engine.runtime.is_running(child.id)
    for sandbox_id in (child.id, parent.id):
        await engine.delete(sandbox_id)


def disk_images(data_dir: Path, sandbox_id: str) -> list[str]:
    """Where a sandbox's disk image is: the engine's disk pool, or beside its database."""
    return glob.glob(f"/run/sandbar/*/disk-pool/{sandbox_id}/disk.img") + glob.glob(
        str(data_dir / "engine" / "sandboxes" / sandbox_id / "disk.img")
    )


def test_a_fork_cut_short_by_a_crash_comes_back_as_an_error_not_an_empty_sandbox(
    tmp_path: Path,
) -> None:
    server = start_engine(tmp_path / "data")
    try:
        with server.client() as api:
            parent = create(api, autoStopInterval=0)
            headers = {"Authorization": f"Bearer {server.api_key}"}
            with httpx.Client(base_url=server.toolbox_url, headers=headers, timeout=60) as box:
                run(box, parent["id"], "echo mine > ~/file.txt && sync")
            forked = api.post(f"/sandbox/{parent['id']}/fork", json={})
            assert forked.status_code == 200, forked.text
            child = forked.json()
        server.stop(signal.SIGKILL)
        # What a crash before the disk was cloned leaves: both records written as the
        # fork began (parent forking, fork creating), and no disk for the fork.
        (image,) = disk_images(server.data_dir, child["id"])
        Path(image).unlink()
        with sqlite3.connect(server.data_dir / "engine" / "engine.sqlite3") as db:
            for sandbox_id, state in ((parent["id"], "forking"), (child["id"], "creating")):
                db.execute("UPDATE sandboxes SET state = ? WHERE id = ?", (state, sandbox_id))
        server.start()
        with server.client() as api:
            after = api.get(f"/sandbox/{child['id']}").json()
            assert after["state"] == "error"
            assert "the fork was interrupted by an engine restart" in after["errorReason"]
            assert not after["recoverable"]
            assert disk_images(server.data_dir, child["id"]) == []
            assert api.get(f"/sandbox/{parent['id']}").json()["state"] == "started"
            assert api.delete(f"/sandbox/{child['id']}").status_code == 200
    finally:
        server.stop()
