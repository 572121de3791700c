"""Restart safety: stopping the engine (cleanly or by a crash) loses no sandbox and no file."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboard.engine.config import EngineConfig
from tests.engine.conftest import create, run
from tests.engine_server import EngineServer, start_engine


@pytest.fixture
def own_engine(tmp_path: Path) -> Iterator[EngineServer]:
    """An engine of this test's own, so it can be stopped and started."""
    server = start_engine(tmp_path / "data")
    yield server
    server.stop()


def host_traces(server: EngineServer) -> list[Path]:
    """The engine's cgroups and mount points on the host, if any are left."""
    instance = EngineConfig(data_dir=server.data_dir).instance_id
    roots = [Path("/run/sandbar") / instance]
    roots += Path("/sys/fs/cgroup").glob(f"*/**/sandbar-{instance}")
    return [path for path in roots if path.exists()]


def state(server: EngineServer, sandbox_id: str) -> dict[str, Any]:
    with server.client() as api:
        return api.get(f"/sandbox/{sandbox_id}").json()


def test_files_and_running_sandboxes_survive_an_engine_restart(own_engine: EngineServer) -> None:
    with own_engine.client() as api:
        running = create(api, autoStopInterval=0, name="keeps-running")
        stopped = create(api, autoStopInterval=0, name="stays-stopped")
    with httpx.Client(base_url=own_engine.toolbox_url, headers=auth(own_engine)) as toolbox:
        run(toolbox, running["id"], "echo precious > ~/file.txt && sync")
        run(toolbox, stopped["id"], "echo also > ~/file.txt")
    with own_engine.client() as api:
        api.post(f"/sandbox/{stopped['id']}/stop")

    own_engine.stop()
    assert host_traces(own_engine) == [], "a clean shutdown leaves no cgroup or mount behind"
    # The disks are in the engine's disk pool image (runtime/disk.py) when it has one.
    if not (own_engine.data_dir / "engine" / "disk-pool.img").is_file():
        sandboxes = own_engine.data_dir / "engine" / "sandboxes"
        kept = sorted(p.name for p in sandboxes.iterdir())
        assert kept == sorted([running["id"], stopped["id"]])
    own_engine.start()

    assert state(own_engine, running["id"])["state"] == "started"
    assert state(own_engine, stopped["id"])["state"] == "stopped"
    with httpx.Client(base_url=own_engine.toolbox_url, headers=auth(own_engine)) as toolbox:
        assert run(toolbox, running["id"], "cat ~/file.txt")["result"] == "precious\n"
    with own_engine.client() as api:
        events = api.get(f"/sandbox/{running['id']}/events").json()
        assert "restarted" in {event["kind"] for event in events}
        api.post(f"/sandbox/{stopped['id']}/start")
    with httpx.Client(base_url=own_engine.toolbox_url, headers=auth(own_engine)) as toolbox:
        assert run(toolbox, stopped["id"], "cat ~/file.txt")["result"] == "also\n"


def test_a_crashed_engine_restarts_its_sandboxes(own_engine: EngineServer) -> None:
    with own_engine.client() as api:
        dto = create(api, autoStopInterval=0)
    with httpx.Client(base_url=own_engine.toolbox_url, headers=auth(own_engine)) as toolbox:
        run(toolbox, dto["id"], "echo durable > ~/file.txt && sync")

    own_engine.stop(signal.SIGKILL)
    own_engine.start()

    assert state(own_engine, dto["id"])["state"] == "started"
    with httpx.Client(base_url=own_engine.toolbox_url, headers=auth(own_engine)) as toolbox:
        assert run(toolbox, dto["id"], "cat ~/file.txt")["result"] == "durable\n"
        processes = run(toolbox, dto["id"], "ps -eo comm")["result"].split()
        assert processes.count("sleep") == 1  # the old sandbox died with the engine


def auth(server: EngineServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}"}


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below ``directory``, as this process sees them."""
    prefix = str(directory)
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return sorted(p for p in points if p == prefix or p.startswith(prefix + "/"))


def test_a_crashed_engine_cleans_up_after_itself_and_leaves_other_engines_alone(
    own_engine: EngineServer, engine: EngineServer, sandbox: Any, toolbox: httpx.Client
) -> None:
    others = Path("/run/sandbar") / EngineConfig(data_dir=engine.data_dir).instance_id
    assert run(toolbox, sandbox.id, "echo before")["result"] == "before\n"
    others_mounts = mounts_under(others)
    assert others_mounts
    with own_engine.client() as api:
        volume = api.post("/volumes", json={"name": "crash-volume"}).json()
        mount = {"volumeId": volume["id"], "mountPath": "/data"}
        dto = create(api, autoStopInterval=0, volumes=[mount])
    with httpx.Client(base_url=own_engine.toolbox_url, headers=auth(own_engine)) as own_toolbox:
        run(own_toolbox, dto["id"], "echo kept > /data/file && sync")

    own_engine.stop(signal.SIGKILL)  # its disk, volume and pool mounts stay behind
    mine = Path("/run/sandbar") / EngineConfig(data_dir=own_engine.data_dir).instance_id
    assert mounts_under(mine)
    own_engine.start()

    assert state(own_engine, dto["id"])["state"] == "started"
    with httpx.Client(base_url=own_engine.toolbox_url, headers=auth(own_engine)) as own_toolbox:
        assert run(own_toolbox, dto["id"], "cat /data/file")["result"] == "kept\n"
    own_engine.stop()
    assert mounts_under(mine) == []
    assert host_traces(own_engine) == []
    # The other engine's sandbox never noticed.
    assert mounts_under(others) == others_mounts
    assert run(toolbox, sandbox.id, "echo after")["result"] == "after\n"


def test_stopped_and_deleted_sandboxes_leave_no_directory_under_run(
    engine: EngineServer, api: httpx.Client, toolbox: httpx.Client
) -> None:
    run_dir = Path("/run/sandbar") / EngineConfig(data_dir=engine.data_dir).instance_id
    dto = create(api, autoStopInterval=0)  # usually a warm sandbox from the pool
    run(toolbox, dto["id"], "true")
    api.post(f"/sandbox/{dto['id']}/stop")
    api.delete(f"/sandbox/{dto['id']}")
    items = api.get("/sandbox", params={"limit": 200}).json()["items"]
    with_volumes = {f"{item['id']}.volumes" for item in items if item.get("volumes")}
    # Only a sandbox that binds volumes has a .volumes directory (warm ones have none).
    volume_dirs = {p.name for p in run_dir.iterdir() if p.name.endswith(".volumes")}
    assert volume_dirs - with_volumes == set()
    assert [p.name for p in run_dir.iterdir() if p.name.split(".")[0] == dto["id"]] == []
