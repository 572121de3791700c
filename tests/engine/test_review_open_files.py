"""Sandbox processes start with the open-files limit the engine started with, not the one
it raised itself to (server.raise_open_files_limit)."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.engine.conftest import create, run
from tests.engine_server import EngineServer, start_engine

STARTED_WITH = 1000  # below this host's hard limit, and unlike any default


def soft_open_files(limits: str) -> str:
    """The soft "Max open files" of a /proc/<pid>/limits text."""
    (line,) = [line for line in limits.splitlines() if line.startswith("Max open files")]
    return line.split()[3]


@pytest.fixture
def low_limit_engine(tmp_path: Path) -> Iterator[EngineServer]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= STARTED_WITH:
        pytest.skip(f"the hard limit ({hard}) leaves the engine nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (STARTED_WITH, hard))
    try:
        server = start_engine(tmp_path / "data")  # inherits the low soft limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    yield server
    server.stop()


def test_sandbox_processes_get_the_limit_the_engine_started_with(
    low_limit_engine: EngineServer,
) -> None:
    assert low_limit_engine.process is not None
    engine_limits = Path(f"/proc/{low_limit_engine.process.pid}/limits").read_text()
    assert soft_open_files(engine_limits) != str(STARTED_WITH), "the engine raised nothing"
    headers = {"Authorization": f"Bearer {low_limit_engine.api_key}"}
    with (
        low_limit_engine.client() as api,
        httpx.Client(base_url=low_limit_engine.toolbox_url, headers=headers, timeout=60) as box,
    ):
        sandbox = create(api, autoStopInterval=0)
        # The first command, the next (through the spare) and the sandbox's init.
        for _ in range(2):
            assert run(box, sandbox["id"], "ulimit -Sn")["result"].strip() == str(STARTED_WITH)
        init = run(box, sandbox["id"], "cat /proc/1/limits")["result"]
        assert soft_open_files(init) == str(STARTED_WITH)
        # Only the soft limit: a process may still raise its own up to the hard one.
        raised = run(box, sandbox["id"], "ulimit -Sn $(ulimit -Hn) && ulimit -Sn")
        assert raised["result"].strip() == soft_open_files(engine_limits)
        api.delete(f"/sandbox/{sandbox['id']}")
