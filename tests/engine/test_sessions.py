"""Sessions and command logs through the official SDK and raw HTTP/WebSocket."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
import websockets
from daytona import Daytona, DaytonaError, DaytonaNotFoundError, Sandbox, SessionExecuteRequest
from websockets.asyncio.client import connect

from dashboard.engine import logs
from tests.engine_server import EngineServer


def _session(sandbox: Sandbox) -> str:
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    sandbox.process.create_session(session_id)
    return session_id


def _ws_url(engine: EngineServer, sandbox: Sandbox, path: str) -> str:
    return f"{engine.toolbox_url.replace('http://', 'ws://')}/{sandbox.id}{path}"


def _headers(engine: EngineServer, version: str | None = "0.226.1") -> dict[str, str]:
    """Auth, and the SDK version that asks for split (marked) output, as the SDK sends."""
    headers = {"Authorization": f"Bearer {engine.api_key}"}
    if version:
        headers["X-Daytona-SDK-Version"] = version
    return headers


def _follow_url(engine: EngineServer, sandbox: Sandbox, session_id: str, cmd_id: str) -> str:
    path = f"/process/session/{session_id}/command/{cmd_id}/logs?follow=true"
    return _ws_url(engine, sandbox, path)


def _wait_done(sandbox: Sandbox, session_id: str, cmd_id: str) -> Any:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        command = sandbox.process.get_session_command(session_id, cmd_id)
        if command.exit_code is not None:
            return command
        time.sleep(0.05)
    raise AssertionError("the command did not finish")


def test_a_session_is_created_listed_got_and_deleted(sandbox: Sandbox) -> None:
    session_id = _session(sandbox)
    assert session_id in {s.session_id for s in sandbox.process.list_sessions()}
    assert sandbox.process.get_session(session_id).commands == []
    sandbox.process.delete_session(session_id)
    with pytest.raises(DaytonaNotFoundError):
        sandbox.process.get_session(session_id)


def test_a_sync_command_returns_stdout_stderr_and_exit_code(sandbox: Sandbox) -> None:
    session_id = _session(sandbox)
    request = SessionExecuteRequest(
        command="echo out; echo err >&2; exit_now() { return 4; }; exit_now"
    )
    response = sandbox.process.execute_session_command(session_id, request)
    assert (response.stdout, response.stderr, response.exit_code) == ("out\n", "err\n", 4)
    command = sandbox.process.get_session_command(session_id, response.cmd_id)
    assert (command.command, command.exit_code) == (request.command, 4)


def test_commands_in_a_session_share_cwd_and_env(sandbox: Sandbox) -> None:
    session_id = _session(sandbox)
    run = sandbox.process.execute_session_command
    run(session_id, SessionExecuteRequest(command="mkdir -p shared && cd shared && export K=v"))
    response = run(session_id, SessionExecuteRequest(command="pwd; echo $K"))
    assert response.stdout == "/home/daytona/shared\nv\n"


def test_an_async_command_gets_its_exit_code_once_it_ends(sandbox: Sandbox) -> None:
    session_id = _session(sandbox)
    request = SessionExecuteRequest(command="sleep 0.3; exit 5", run_async=True)
    response = sandbox.process.execute_session_command(session_id, request)
    assert sandbox.process.get_session_command(session_id, response.cmd_id).exit_code is None
    assert _wait_done(sandbox, session_id, response.cmd_id).exit_code == 5


def test_the_deprecated_async_flag_answers_202_with_the_command_id(
    sandbox: Sandbox, toolbox: httpx.Client
) -> None:
    session_id = _session(sandbox)
    response = toolbox.post(
        f"/{sandbox.id}/process/session/{session_id}/exec", json={"command": "true", "async": True}
    )
    assert response.status_code == 202
    assert set(response.json()) == {"cmdId"}


def test_following_logs_separates_interleaved_stdout_and_stderr(sandbox: Sandbox) -> None:
    session_id = _session(sandbox)
    script = "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.1; done"
    request = SessionExecuteRequest(command=script, run_async=True)
    cmd_id = sandbox.process.execute_session_command(session_id, request).cmd_id
    stdout: list[str] = []
    stderr: list[str] = []
    asyncio.run(
        sandbox.process.get_session_command_logs_async(
            session_id, cmd_id, stdout.append, stderr.append
        )
    )
    assert "".join(stdout) == "out1\nout2\nout3\n"
    assert "".join(stderr) == "err1\nerr2\nerr3\n"
    whole = sandbox.process.get_session_command_logs(session_id, cmd_id)
    assert (whole.stdout, whole.stderr) == ("out1\nout2\nout3\n", "err1\nerr2\nerr3\n")
    assert sorted(whole.output.splitlines()) == sorted(
        ["out1", "out2", "out3", "err1", "err2", "err3"]
    )


def test_input_reaches_a_command_that_reads_it(sandbox: Sandbox) -> None:
    session_id = _session(sandbox)
    request = SessionExecuteRequest(command="read name; echo hello $name", run_async=True)
    cmd_id = sandbox.process.execute_session_command(session_id, request).cmd_id
    sandbox.process.send_session_command_input(session_id, cmd_id, "sandbar\n")
    _wait_done(sandbox, session_id, cmd_id)
    assert sandbox.process.get_session_command_logs(session_id, cmd_id).stdout == "hello sandbar\n"


async def test_a_followed_log_demultiplexes_split_markers_and_closes_with_1000(
    sandbox: Sandbox, engine: EngineServer
) -> None:
    session_id = _session(sandbox)
    request = SessionExecuteRequest(command="printf 'a\\nb'; printf 'c\\n' >&2", run_async=True)
    cmd_id = sandbox.process.execute_session_command(session_id, request).cmd_id
    url = _ws_url(
        engine, sandbox, f"/process/session/{session_id}/command/{cmd_id}/logs?follow=true"
    )
    async with connect(url, additional_headers=_headers(engine)) as socket:
        frames = [frame async for frame in socket]
        assert socket.close_code == 1000
    raw = b"".join(f if isinstance(f, bytes) else f.encode() for f in frames)
    one_byte_frames = [raw[i : i + 1] for i in range(len(raw))]
    pieces = list(logs.demux(one_byte_frames))
    assert b"".join(d for s, d in pieces if s == 1) == b"a\nb"
    assert b"".join(d for s, d in pieces if s == 2) == b"c\n"


async def test_following_from_the_end_sends_only_the_last_lines(
    sandbox: Sandbox, engine: EngineServer
) -> None:
    session_id = _session(sandbox)
    response = sandbox.process.execute_session_command(
        session_id, SessionExecuteRequest(command="seq 1 1000")
    )
    path = f"/process/session/{session_id}/command/{response.cmd_id}/logs?follow=true&tail=2"
    async with connect(_ws_url(engine, sandbox, path), additional_headers=_headers(engine)) as ws:
        raw = b"".join([frame async for frame in ws])  # type: ignore[misc]
    assert raw == b"\x01\x01\x01999\n\x01\x01\x011000\n"


async def test_following_a_running_command_from_the_end_sends_only_new_output(
    sandbox: Sandbox, engine: EngineServer
) -> None:
    session_id = _session(sandbox)
    request = SessionExecuteRequest(command="echo early; sleep 1; echo late", run_async=True)
    cmd_id = sandbox.process.execute_session_command(session_id, request).cmd_id
    await asyncio.sleep(0.5)
    url = _follow_url(engine, sandbox, session_id, cmd_id) + "&tail=0"
    async with connect(url, additional_headers=_headers(engine)) as socket_:
        raw = b"".join([frame async for frame in socket_])  # type: ignore[misc]
    assert raw == b"\x01\x01\x01late\n"


async def test_a_client_without_a_version_gets_the_log_without_markers(
    sandbox: Sandbox, engine: EngineServer, toolbox: httpx.Client
) -> None:
    session_id = _session(sandbox)
    request = SessionExecuteRequest(command="echo out; echo err >&2")
    cmd_id = sandbox.process.execute_session_command(session_id, request).cmd_id
    url = _follow_url(engine, sandbox, session_id, cmd_id)
    async with connect(url, additional_headers=_headers(engine, None)) as socket_:
        raw = b"".join([f async for f in socket_])  # type: ignore[misc]
    assert sorted(raw.splitlines()) == [b"err", b"out"]
    path = f"/{sandbox.id}/process/session/{session_id}/command/{cmd_id}/logs"
    plain = await asyncio.to_thread(toolbox.get, path)
    assert plain.headers["content-type"].startswith("text/plain")
    assert sorted(plain.content.splitlines()) == [b"err", b"out"]
    # 0.27 <= version < 0.167: split output, but still plain text (markers included).
    marked = await asyncio.to_thread(
        toolbox.get, path, headers={"X-Daytona-SDK-Version": "0.100.0"}
    )
    assert sorted(marked.content.splitlines()) == [b"\x01\x01\x01out", b"\x02\x02\x02err"]


async def test_a_log_follower_that_sends_garbage_still_gets_the_log(
    sandbox: Sandbox, engine: EngineServer
) -> None:
    session_id = _session(sandbox)
    request = SessionExecuteRequest(command="sleep 0.3; echo done", run_async=True)
    cmd_id = sandbox.process.execute_session_command(session_id, request).cmd_id
    url = _follow_url(engine, sandbox, session_id, cmd_id)
    async with connect(url, additional_headers=_headers(engine)) as socket_:
        await socket_.send(b"\x00\xff" * 1000)
        await socket_.send("not a command")
        raw = b"".join([frame async for frame in socket_])  # type: ignore[misc]
        assert socket_.close_code == 1000
    assert raw == b"\x01\x01\x01done\n"


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
async def test_a_million_line_log_is_followed_from_disk_without_growing_the_engine(
    sandbox: Sandbox, engine: EngineServer
) -> None:
    assert engine.process is not None
    session_id = _session(sandbox)
    request = SessionExecuteRequest(command="seq 1 1000000", run_async=True)
    cmd_id = sandbox.process.execute_session_command(session_id, request).cmd_id
    before = _rss_kib(engine.process.pid)
    url = _ws_url(
        engine, sandbox, f"/process/session/{session_id}/command/{cmd_id}/logs?follow=true"
    )
    lines = 0
    async with connect(url, additional_headers=_headers(engine), max_size=None) as socket:
        async for frame in socket:
            lines += frame.count(b"\n") if isinstance(frame, bytes) else frame.count("\n")
    assert lines == 1_000_000
    # The log is ~10 MB on disk; the engine must not have held it (generous bound).
    assert _rss_kib(engine.process.pid) - before < 8 * 1024


def test_deleting_a_session_ends_its_followers_cleanly(sandbox: Sandbox) -> None:
    session_id = _session(sandbox)
    request = SessionExecuteRequest(command="echo started; sleep 60", run_async=True)
    cmd_id = sandbox.process.execute_session_command(session_id, request).cmd_id
    seen: list[str] = []

    async def follow_then_delete() -> None:
        follower = asyncio.create_task(
            sandbox.process.get_session_command_logs_async(
                session_id, cmd_id, seen.append, seen.append
            )
        )
        await asyncio.sleep(0.5)
        await asyncio.to_thread(sandbox.process.delete_session, session_id)
        await asyncio.wait_for(follower, 10)

    asyncio.run(follow_then_delete())
    assert seen == ["started\n"]


# -- bad input ----------------------------------------------------------------------


def test_unknown_sessions_and_commands_are_404_in_daytonas_error_shape(
    sandbox: Sandbox, toolbox: httpx.Client
) -> None:
    response = toolbox.get(f"/{sandbox.id}/process/session/nope")
    assert response.status_code == 404
    assert {"statusCode", "message", "error"} <= set(response.json())
    session_id = _session(sandbox)
    for path in ("", "/logs"):
        response = toolbox.get(f"/{sandbox.id}/process/session/{session_id}/command/nope{path}")
        assert response.status_code == 404
        assert response.json()["statusCode"] == 404
    response = toolbox.post(
        f"/{sandbox.id}/process/session/{session_id}/command/nope/input", json={"data": "x"}
    )
    assert response.status_code == 404
    with pytest.raises(DaytonaNotFoundError):
        sandbox.process.execute_session_command("nope", SessionExecuteRequest(command="true"))


def test_a_duplicate_session_id_is_409(sandbox: Sandbox, toolbox: httpx.Client) -> None:
    session_id = _session(sandbox)
    response = toolbox.post(f"/{sandbox.id}/process/session", json={"sessionId": session_id})
    assert response.status_code == 409
    assert response.json()["statusCode"] == 409


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"sessionId": ""},
        {"sessionId": 3},
        {"sessionId": "a\nb"},
        {"sessionId": "a/b"},
        {"other": "x"},
    ],
)
def test_a_malformed_session_create_is_400(
    sandbox: Sandbox, toolbox: httpx.Client, body: Any
) -> None:
    response = toolbox.post(f"/{sandbox.id}/process/session", json=body)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "body",
    [{}, {"command": ""}, {"command": 1}, {"command": "true", "runAsync": "yes"}, {"x": 1}],
)
def test_a_malformed_exec_is_400(sandbox: Sandbox, toolbox: httpx.Client, body: Any) -> None:
    session_id = _session(sandbox)
    response = toolbox.post(f"/{sandbox.id}/process/session/{session_id}/exec", json=body)
    assert response.status_code == 400, response.text


def test_input_to_a_finished_command_is_refused(sandbox: Sandbox, toolbox: httpx.Client) -> None:
    session_id = _session(sandbox)
    response = sandbox.process.execute_session_command(
        session_id, SessionExecuteRequest(command="true")
    )
    reply = toolbox.post(
        f"/{sandbox.id}/process/session/{session_id}/command/{response.cmd_id}/input",
        json={"data": "late\n"},
    )
    assert reply.status_code == 409


async def test_following_an_unknown_command_is_refused_with_404(
    sandbox: Sandbox, engine: EngineServer
) -> None:
    session_id = _session(sandbox)
    url = _ws_url(engine, sandbox, f"/process/session/{session_id}/command/nope/logs?follow=true")
    with pytest.raises(websockets.InvalidStatus) as raised:
        async with connect(url, additional_headers=_headers(engine)):
            pass
    assert raised.value.response.status_code == 404


def test_the_sdk_reports_a_follow_of_an_unknown_command_as_an_error(sandbox: Sandbox) -> None:
    session_id = _session(sandbox)
    with pytest.raises(DaytonaError):
        asyncio.run(
            sandbox.process.get_session_command_logs_async(session_id, "nope", print, print)
        )


def test_sessions_and_their_logs_end_with_the_sandboxs_processes(
    daytona: Daytona, engine: EngineServer
) -> None:
    created = daytona.create()
    try:
        session_id = _session(created)
        created.process.execute_session_command(session_id, SessionExecuteRequest(command="true"))
        logs_dir = engine.data_dir / "engine" / "sessions" / created.id
        assert logs_dir.is_dir()
        created.stop()
        created.start()
        assert created.process.list_sessions() == []  # as Daytona: the daemon restarted
        assert not logs_dir.exists()
    finally:
        created.delete()
