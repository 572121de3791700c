"""Sandbox processes still start when the engine's hard limit on open files has been
lowered below the soft limit it started with (``prlimit --pid`` by an operator): their
soft limit is then the hard one, not a ``ulimit`` the shell refuses."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.engine.conftest import create, run
from tests.engine.test_review_open_files import STARTED_WITH
from tests.engine_server import EngineServer, start_engine

LOWERED_TO = STARTED_WITH // 2


@pytest.fixture
def lowered_engine(tmp_path: Path) -> Iterator[EngineServer]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= STARTED_WITH:
        pytest.skip(f"the hard limit ({hard}) is below the limit the engine starts with")
    resource.setrlimit(resource.RLIMIT_NOFILE, (STARTED_WITH, hard))
    try:
        # No warm pool: the sandbox's init is launched after the limit is lowered.
        server = start_engine(tmp_path / "data", SANDBAR_ENGINE_WARM_POOL="0")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert server.process is not None
    resource.prlimit(server.process.pid, resource.RLIMIT_NOFILE, (LOWERED_TO, LOWERED_TO))
    yield server
    server.stop()


def test_a_sandbox_starts_and_runs_commands_under_a_lowered_hard_limit(
    lowered_engine: EngineServer,
) -> None:
    headers = {"Authorization": f"Bearer {lowered_engine.api_key}"}
    with (
        lowered_engine.client() as api,
        httpx.Client(base_url=lowered_engine.toolbox_url, headers=headers, timeout=60) as box,
    ):
        sandbox = create(api, autoStopInterval=0)
        assert (sandbox["state"], sandbox.get("errorReason")) == ("started", None)
        for _ in range(2):  # the first command, then the next through the spare
            result = run(box, sandbox["id"], "ulimit -Sn")
            assert (result["exitCode"], result["result"].strip()) == (0, str(LOWERED_TO))
        api.delete(f"/sandbox/{sandbox['id']}")
