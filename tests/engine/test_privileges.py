"""Least privilege inside: no capabilities, no_new_privs and seccomp from every way in."""

from __future__ import annotations

import asyncio
import platform
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from daytona import Sandbox, SessionExecuteRequest
from websockets.asyncio.client import connect

from tests.engine_server import EngineServer

STATUS = "grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status"
KEYCTL = {"x86_64": 250, "aarch64": 219}  # keyctl(2), refused by the filter


def assert_unprivileged(status: str) -> None:
    fields = dict(re.findall(r"^(\w+):\s+(\S+)$", status, re.MULTILINE))
    for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[name], 16) == 0, (name, status)
    assert fields["NoNewPrivs"] == "1", status
    assert fields["Seccomp"] == "2", status  # a filter is loaded


def test_a_plain_command_holds_no_capability(sandbox: Sandbox) -> None:
    assert_unprivileged(sandbox.process.exec(STATUS).result)


def test_commands_run_at_once_all_hold_none(sandbox: Sandbox, toolbox: httpx.Client) -> None:
    # Several at once: one finds the waiting spare process, the others come in cold.
    def run(n: int) -> str:
        body = {"command": f'sh -c "{STATUS}; sleep 0.{n}"'}
        response = toolbox.post(f"/{sandbox.id}/process/execute", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["result"])

    with ThreadPoolExecutor(4) as pool:
        for status in pool.map(run, range(4)):
            assert_unprivileged(status)


def test_a_code_run_holds_no_capability(sandbox: Sandbox) -> None:
    code = "print(open('/proc/self/status').read())"
    assert_unprivileged(sandbox.process.code_run(code).result)


def test_a_session_command_holds_no_capability(sandbox: Sandbox) -> None:
    session = f"s-{uuid.uuid4().hex[:8]}"
    sandbox.process.create_session(session)
    try:
        result = sandbox.process.execute_session_command(
            session, SessionExecuteRequest(command=STATUS)
        )
        assert_unprivileged(result.stdout or result.output or "")
    finally:
        sandbox.process.delete_session(session)


def test_a_terminal_holds_no_capability(
    engine: EngineServer, sandbox: Sandbox, toolbox: httpx.Client
) -> None:
    pty_id = f"p-{uuid.uuid4().hex[:8]}"
    assert toolbox.post(f"/{sandbox.id}/process/pty", json={"id": pty_id}).status_code == 201
    url = f"{engine.toolbox_url.replace('http://', 'ws://')}/{sandbox.id}/process/pty/{pty_id}/connect"

    async def talk() -> str:
        headers = {"Authorization": f"Bearer {engine.api_key}"}
        async with connect(url, additional_headers=headers) as socket:
            # The marker is computed by the shell: the echo of the typed line lacks it.
            # cat, not grep: an interactive shell may colour grep's output.
            await socket.send(b"cat /proc/self/status; echo END-$((6*7))\n")
            seen = ""
            while "END-42" not in seen:
                frame = await asyncio.wait_for(socket.recv(), 10)
                seen += frame.decode() if isinstance(frame, bytes) else frame
            return seen.replace("\r", "")

    try:
        assert_unprivileged(asyncio.run(talk()))
    finally:
        toolbox.delete(f"/{sandbox.id}/process/pty/{pty_id}")


def test_the_sandboxs_first_process_holds_no_capability(sandbox: Sandbox) -> None:
    assert_unprivileged(sandbox.process.exec(STATUS.replace("self", "1")).result)


@pytest.mark.skipif(platform.machine() not in KEYCTL, reason="keyctl's number is not known here")
def test_a_refused_system_call_fails_with_eperm(sandbox: Sandbox) -> None:
    number = KEYCTL[platform.machine()]
    code = (
        "import ctypes, errno\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        f"print(libc.syscall({number}, 0, 0, 0, 0, 0), errno.errorcode[ctypes.get_errno()])\n"
    )
    assert sandbox.process.code_run(code).result.strip() == "-1 EPERM"


def test_no_new_namespace_can_be_made(sandbox: Sandbox) -> None:
    result = sandbox.process.exec("unshare --user --map-root-user true; echo $?")
    assert "Operation not permitted" in result.result
    assert result.result.rstrip().endswith("1")
