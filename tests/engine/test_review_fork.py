"""A fork holds its parent only while the disk is cloned, and boots on its own.

The in-process engine of ``test_failed_create`` is used where the fork's boot must be
held or made to fail on demand; everything else is the real runtime on this host.
"""

from __future__ import annotations

import asyncio

import pytest

from dashboard.engine.lifecycle import CreateRequest, Engine
from dashboard.engine.runtime import Runtime, SandboxSpec
from dashboard.engine.runtime.cgroups import SandboxCgroup
from tests.engine.test_failed_create import engine as in_process_engine  # noqa: F401
from tests.engine.test_failed_create import fail


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
