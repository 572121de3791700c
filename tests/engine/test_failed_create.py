"""A create that fails at any step leaves nothing behind: no disk, mount, cgroup or process.

The failures are injected (the engine cannot be made to fail at each step on demand);
everything else is the real runtime on this host, driven in this process.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dashboard.engine.config import load_config
from dashboard.engine.errors import NotFound
from dashboard.engine.lifecycle import CreateRequest, Engine
from dashboard.engine.runtime import Runtime, RuntimeError_
from dashboard.engine.runtime.cgroups import SandboxCgroup
from dashboard.engine.runtime.disk import Disk
from dashboard.engine.runtime.launch import Launcher
from dashboard.engine.runtime.network import UserNetwork


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    # A uid range of its own, as every engine on one machine needs (ids.claim).
    config = replace(
        load_config(),
        data_dir=tmp_path / "data",
        warm_pool=0,
        sandbox_uid=8_000_000 + os.getpid() % 100_000 * 100,
        sandbox_uid_count=50,
    )
    engine = Engine(config)
    await engine.startup()
    yield engine
    await engine.shutdown()


def fail(*_: Any, **__: Any) -> Any:
    raise OSError("injected failure")


async def fail_async(*_: Any, **__: Any) -> Any:
    raise RuntimeError_("injected failure")


STEPS = {
    "disk image": (Disk, "create", fail_async),
    "disk mount": (Disk, "mount", fail_async),
    "root overlay": (Runtime, "mount_root", fail_async),
    "cgroups": (SandboxCgroup, "create", fail),
    "id map": (Launcher, "_map_ids", fail_async),
    "network": (UserNetwork, "start", fail_async),
}


async def settled(engine: Engine, sandbox_id: str) -> list[str]:
    """:func:`leftovers` once exited processes have had a moment to be reaped."""
    for _ in range(100):
        found = leftovers(engine, sandbox_id)
        if not found:
            break
        await asyncio.sleep(0.02)
    return found


def leftovers(engine: Engine, sandbox_id: str) -> list[str]:
    """Everything on this host that still mentions the sandbox."""
    found: list[str] = []
    runtime = engine.runtime
    if runtime.sandbox_dir(sandbox_id).exists():
        found.append(f"directory {runtime.sandbox_dir(sandbox_id)}")
    found += [
        f"run entry {entry}" for entry in runtime.run_dir.iterdir() if sandbox_id in entry.name
    ]
    with open("/proc/self/mountinfo") as mountinfo:
        found += [f"mount {line.split()[4]}" for line in mountinfo if sandbox_id in line]
    cgroup = runtime.cgroups.sandbox(sandbox_id)
    found += [f"cgroup {d}" for d in (*cgroup.v1_dirs.values(), cgroup.v2_dir) if d and d.exists()]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cgroup") as own:
                if sandbox_id in own.read():
                    with open(f"/proc/{pid}/cmdline", "rb") as command:
                        name = command.read().split(b"\0")[0].decode(errors="replace")
                    found.append(f"process {pid} ({name})")
        except OSError:
            continue
    return found


@pytest.mark.parametrize("step", STEPS)
async def test_a_create_that_fails_leaves_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    owner, name, replacement = STEPS[step]
    monkeypatch.setattr(owner, name, replacement)
    record = await engine.create(CreateRequest(memory=2))
    assert record.state == "error"
    assert "injected failure" in (record.error_reason or "")
    assert not record.recoverable
    assert await settled(engine, record.id) == []
    # The record stays for Daytona's sake; deleting it frees what is left: the record.
    monkeypatch.undo()
    await engine.delete(record.id)
    with pytest.raises(NotFound):
        engine.find(record.id)


async def test_a_create_that_works_leaves_what_a_sandbox_needs(engine: Engine) -> None:
    # The counter above must see a real sandbox's traces, or it would prove nothing.
    record = await engine.create(CreateRequest(memory=2))
    assert record.state == "started"
    found = leftovers(engine, record.id)
    assert any(item.startswith("directory") for item in found)
    assert any(item.startswith("mount") for item in found)
    assert any(item.startswith("cgroup") for item in found)
    assert any(item.startswith("process") for item in found)
    await engine.delete(record.id)
    assert await settled(engine, record.id) == []
