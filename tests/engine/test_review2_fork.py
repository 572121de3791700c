"""A fork whose disk was cloned but whose boot an engine crash cut short comes back
started with its parent's files, as an interrupted create does, not destroyed.

The crash is the fork's task dying mid-boot in an in-process engine (the records stay as
it left them), then a second engine on the same data directory; the boot is held by
wrapping the real runtime's start, and everything else is the real runtime on this host.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from dashboard.engine.config import EngineConfig, load_config
from dashboard.engine.lifecycle import CreateRequest, Engine
from dashboard.engine.runtime import Runtime, SandboxSpec


@pytest.fixture
def config(tmp_path: Path) -> EngineConfig:
    # A uid range of its own, as every engine on one machine needs (ids.claim).
    return replace(
        load_config(),
        data_dir=tmp_path / "data",
        warm_pool=0,
        sandbox_uid=8_000_000 + os.getpid() % 100_000 * 100,
        sandbox_uid_count=50,
    )


@contextlib.asynccontextmanager
async def running_engine(config: EngineConfig) -> AsyncIterator[Engine]:
    engine = Engine(config)
    await engine.startup()
    try:
        yield engine
    finally:
        await engine.shutdown()


async def crash_during_the_forks_boot(
    engine: Engine, parent_id: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Fork ``parent_id`` and let the fork's task die once its disk is cloned and its
    boot has begun; the fork's id."""
    booting = asyncio.Event()
    real_start = Runtime.start

    async def held_start(runtime: Runtime, spec: SandboxSpec) -> None:
        if spec.id == parent_id:
            await real_start(runtime, spec)
            return
        booting.set()
        await asyncio.Event().wait()

    with monkeypatch.context() as patch:
        patch.setattr(Runtime, "start", held_start)
        forking = asyncio.create_task(engine.fork(parent_id, None))
        await asyncio.wait_for(booting.wait(), 60)
        forking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forking
    (child,) = engine.forks.children(parent_id, include_destroyed=False)
    return child.id


async def test_a_fork_cut_short_while_booting_comes_back_started_with_its_parents_files(
    config: EngineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_engine(config) as engine:
        parent = await engine.create(CreateRequest(memory=1))
        assert parent.state == "started"
        marker = engine.runtime.disk(parent.id).mount_point / "home" / "marker.txt"
        marker.write_text("the parent's\n")
        os.sync()
        child_id = await crash_during_the_forks_boot(engine, parent.id, monkeypatch)
    async with running_engine(config) as engine:
        child = engine.find(child_id)
        assert (child.state, child.error_reason) == ("started", None)
        assert engine.runtime.is_running(child_id)
        copied = engine.runtime.disk(child_id).mount_point / "home" / "marker.txt"
        assert copied.read_text() == "the parent's\n"
        assert engine.find(parent.id).state == "started"
        for sandbox_id in (child_id, parent.id):
            await engine.delete(sandbox_id)
