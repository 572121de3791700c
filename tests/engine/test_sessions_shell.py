"""The session shell protocol on a plain local bash (no sandbox needed)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from dashboard.engine import logs
from dashboard.engine.logs import LogBudget
from dashboard.engine.sessions import Command, SessionManager


class LocalShell:
    """The runtime's SandboxProcess interface over a local subprocess."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @property
    def stdin(self) -> asyncio.StreamWriter | None:
        return self.process.stdin

    @property
    def stdout(self) -> asyncio.StreamReader | None:
        return self.process.stdout

    async def wait(self) -> int:
        code = await self.process.wait()
        return 128 - code if code < 0 else code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def release(self) -> None:
        pass


async def spawn(argv: Sequence[str], fds: Sequence[int]) -> LocalShell:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        pass_fds=fds,
        start_new_session=True,
    )
    return LocalShell(process)


def output(command: Command) -> dict[str, str]:
    return json.loads(b"".join(logs.json_logs(command.log.path)))


async def run(manager: SessionManager, session_id: str, text: str) -> Command:
    command = await manager.get(session_id).execute(text)
    await asyncio.wait_for(command.done.wait(), 10)
    return command


async def test_a_command_that_exits_the_shell_ends_with_its_status_and_the_next_gets_a_new_shell(
    tmp_path: Path,
) -> None:
    manager = SessionManager(tmp_path, spawn)
    manager.create("s")
    await run(manager, "s", "export GONE=soon")
    first = await manager.get("s").execute("echo bye; exit 7")
    queued = await manager.get("s").execute("echo never")
    await asyncio.wait_for(queued.done.wait(), 10)
    assert (first.exit_code, output(first)["stdout"], queued.exit_code) == (7, "bye\n", 137)
    fresh = await run(manager, "s", "echo [$GONE]")
    assert (fresh.exit_code, output(fresh)["stdout"]) == (0, "[]\n")
    await manager.close()


async def test_output_resembling_the_sentinel_is_kept(tmp_path: Path) -> None:
    manager = SessionManager(tmp_path, spawn)
    manager.create("s")
    command = await run(manager, "s", r"printf 'a\036\037SANDBAR-x:1\036b\036'")
    assert output(command)["stdout"] == "a\x1e\x1fSANDBAR-x:1\x1eb\x1e"
    await manager.close()


async def test_queued_commands_run_in_order_in_the_same_shell(tmp_path: Path) -> None:
    manager = SessionManager(tmp_path, spawn)
    session = manager.create("s")
    commands = [
        await session.execute(f"sleep 0.0{n}; echo {n}; N=$((N+1)); echo $N") for n in range(5)
    ]
    await asyncio.wait_for(asyncio.gather(*(c.done.wait() for c in commands)), 10)
    assert [output(c)["stdout"] for c in commands] == [f"{n}\n{n + 1}\n" for n in range(5)]
    await manager.close()


async def test_deleting_a_session_kills_its_command_and_removes_its_logs(tmp_path: Path) -> None:
    manager = SessionManager(tmp_path, spawn)
    session = manager.create("s")
    command = await session.execute("sleep 60")
    await manager.delete("s")
    assert command.exit_code == 137
    assert not session.directory.exists()


async def test_output_past_the_sandboxs_log_budget_is_dropped_with_a_notice(
    tmp_path: Path,
) -> None:
    budget = LogBudget(limit=1000)
    manager = SessionManager(tmp_path, spawn, budget)
    manager.create("s")
    command = await run(manager, "s", "seq 1 100000")
    logged = output(command)
    assert command.exit_code == 0
    assert logged["stdout"].startswith("1\n2\n3\n")
    assert len(logged["stdout"]) < 1000
    assert "output dropped" in logged["stderr"]
    assert budget.used <= 1000
    await manager.delete("s")
    assert budget.used == 0
