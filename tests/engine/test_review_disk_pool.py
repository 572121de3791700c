"""The disk pool at engine start: an earlier engine's leftovers go first, and a pool that
holds sandboxes' disks is mounted or the engine does not start."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dashboard.engine.config import EngineConfig
from dashboard.engine.runtime.cgroups import CgroupManager
from dashboard.engine.runtime.commands import join_cgroups
from tests.engine.conftest import create, run
from tests.engine_server import EngineServer, start_engine


@pytest.fixture
def own_engine(tmp_path: Path) -> Iterator[EngineServer]:
    # No warm pool: a sandbox from it keeps its pool cgroup name, not its id.
    server = start_engine(tmp_path / "data", SANDBAR_ENGINE_WARM_POOL="0")
    yield server
    server.stop()


def pool_image(server: EngineServer) -> Path:
    image = server.data_dir / "engine" / "disk-pool.img"
    if not image.is_file():
        pytest.skip("this host has no disk pool (mkfs.xfs missing)")
    return image


def toolbox(server: EngineServer) -> httpx.Client:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    return httpx.Client(base_url=server.toolbox_url, headers=headers, timeout=60)


def leave_a_process_on_the_disk(server: EngineServer, sandbox_id: str) -> subprocess.Popen[bytes]:
    """A process in the sandbox's cgroup whose working directory is on its disk, as a
    crashed engine can leave one (started the way the engine starts its own)."""
    instance = EngineConfig(data_dir=server.data_dir).instance_id
    cgroup = CgroupManager(instance).sandbox(sandbox_id)
    exec_dir = None
    if cgroup.v2_dir is not None:
        exec_dir = cgroup.v2_dir / "leftover"
        exec_dir.mkdir()
    home = Path("/run/sandbar") / instance / sandbox_id / "home"
    return subprocess.Popen([*join_cgroups(cgroup.procs_files(exec_dir)), "sleep", "600"], cwd=home)


def test_a_crashed_engines_leftover_process_is_killed_before_the_pool_is_mounted(
    own_engine: EngineServer,
) -> None:
    pool_image(own_engine)
    with own_engine.client() as api:
        sandbox = create(api, autoStopInterval=0)
    with toolbox(own_engine) as client:
        run(client, sandbox["id"], "echo kept > ~/file.txt && sync")
    leftover = leave_a_process_on_the_disk(own_engine, sandbox["id"])
    try:
        own_engine.stop(signal.SIGKILL)
        own_engine.start()
        # Killed by the new engine: it held the old pool mounted, which XFS would not
        # mount a second time, and the sandbox would have come back without its disk.
        assert leftover.wait(timeout=10) == -signal.SIGKILL
        with own_engine.client() as api:
            after = api.get(f"/sandbox/{sandbox['id']}").json()
        assert (after["state"], after["errorReason"]) == ("started", None)
        with toolbox(own_engine) as client:
            assert run(client, sandbox["id"], "cat ~/file.txt")["result"] == "kept\n"
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


def test_an_engine_whose_pool_will_not_mount_refuses_to_start_naming_it(
    own_engine: EngineServer,
) -> None:
    image = pool_image(own_engine)
    with own_engine.client() as api:
        create(api, autoStopInterval=0)
    own_engine.stop()
    with open(image, "r+b") as pool:  # no XFS superblock any more
        pool.write(bytes(4096))
    with pytest.raises(RuntimeError, match="engine exited") as refused:
        own_engine.start()
    message = str(refused.value)
    assert f"the disk pool {image} could not be mounted" in message
    assert "will not start without it" in message
