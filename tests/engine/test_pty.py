"""PTY terminals through the official SDK and raw WebSockets."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
import uuid
from typing import Any

import httpx
import pytest
import websockets
from daytona import (
    AsyncDaytona,
    DaytonaConfig,
    DaytonaError,
    DaytonaNotFoundError,
    Sandbox,
    SessionExecuteRequest,
)
from daytona.common.pty import PtySize
from websockets.asyncio.client import ClientConnection, connect

from tests.engine_server import EngineServer

EXIT_CONTROL = "X-Daytona-Pty-Exit-Control"


def _pty_id() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


def _ws_url(engine: EngineServer, sandbox: Sandbox, path: str) -> str:
    return f"{engine.toolbox_url.replace('http://', 'ws://')}/{sandbox.id}{path}"


def _headers(engine: EngineServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {engine.api_key}"}


def _create(toolbox: httpx.Client, sandbox: Sandbox, **body: Any) -> str:
    pty_id = body.setdefault("id", _pty_id())
    response = toolbox.post(f"/{sandbox.id}/process/pty", json=body)
    assert response.status_code == 201, response.text
    assert response.json() == {"sessionId": pty_id}
    return pty_id


def _attach(
    engine: EngineServer, sandbox: Sandbox, pty_id: str, query: str = "", **options: Any
) -> Any:
    return connect(
        _ws_url(engine, sandbox, f"/process/pty/{pty_id}/connect{query}"),
        additional_headers=_headers(engine),
        subprotocols=[EXIT_CONTROL],  # type: ignore[list-item]
        **options,
    )


def _small_socket(engine: EngineServer) -> socket.socket:
    """A client socket with a small receive buffer: the kernel's default here can absorb
    tens of megabytes, which would hide a reader that has stopped."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
    sock.connect(("127.0.0.1", engine.port))
    return sock


async def _connected(socket: ClientConnection) -> None:
    first = await asyncio.wait_for(socket.recv(), 10)
    assert json.loads(first) == {"type": "control", "status": "connected"}


async def _drain(socket: ClientConnection) -> list[str | bytes]:
    """Every frame until the server closes (whatever the close code)."""
    frames: list[str | bytes] = []
    while True:
        try:
            frames.append(await asyncio.wait_for(socket.recv(), 10))
        except websockets.ConnectionClosed:
            return frames


async def _rest(toolbox: httpx.Client, method: str, path: str, **options: Any) -> httpx.Response:
    """A toolbox call from async code, off the event loop."""
    return await asyncio.to_thread(toolbox.request, method, path, **options)


async def _read_until(socket: ClientConnection, needle: bytes, seconds: float = 10) -> bytes:
    """Output up to ``needle`` (only the last 64 KiB are kept: floods stay cheap)."""
    seen = b""
    deadline = time.monotonic() + seconds
    while needle not in seen:
        frame = await asyncio.wait_for(socket.recv(), max(deadline - time.monotonic(), 0.01))
        seen = seen[-(64 << 10) :] + (frame if isinstance(frame, bytes) else frame.encode())
    return seen


# -- the SDK ------------------------------------------------------------------------


def test_the_sdk_creates_a_pty_with_env_resizes_it_and_gets_the_exit_code(
    sandbox: Sandbox,
) -> None:
    output = bytearray()
    handle = sandbox.process.create_pty_session(
        _pty_id(), envs={"GREETING": "hi there"}, pty_size=PtySize(rows=30, cols=100)
    )
    handle.send_input("echo $GREETING; stty size\n")
    info = handle.resize(PtySize(rows=40, cols=120))
    assert (info.cols, info.rows, info.active) == (120, 40, True)
    handle.send_input("stty size; exit 3\n")
    result = handle.wait(on_data=lambda data: output.extend(data), timeout=30)
    assert result.exit_code == 3
    text = output.decode(errors="replace")
    assert "hi there" in text
    assert "40 120" in text


def test_the_sdk_reconnects_to_a_pty_and_finds_the_same_shell(sandbox: Sandbox) -> None:
    pty_id = _pty_id()
    first = sandbox.process.create_pty_session(pty_id)
    first.send_input("export MARK=still-here\n")
    time.sleep(0.3)
    first.disconnect()
    again = sandbox.process.connect_pty_session(pty_id)
    again.send_input("echo $MARK; exit\n")
    output = bytearray()
    assert again.wait(on_data=lambda data: output.extend(data), timeout=30).exit_code == 0
    assert b"still-here" in output


def test_the_sdk_kills_a_pty_and_lists_and_gets_its_info(sandbox: Sandbox) -> None:
    pty_id = _pty_id()
    handle = sandbox.process.create_pty_session(pty_id, cwd="/tmp")
    info = sandbox.process.get_pty_session_info(pty_id)
    assert (info.id, info.cwd, info.active, info.lazy_start) == (pty_id, "/tmp", True, False)
    assert pty_id in {s.id for s in sandbox.process.list_pty_sessions()}
    handle.kill()
    assert handle.wait(timeout=30).exit_code == 137
    with pytest.raises(DaytonaNotFoundError):
        sandbox.process.get_pty_session_info(pty_id)


def test_connecting_to_an_unknown_pty_fails_with_404(sandbox: Sandbox) -> None:
    # The sync SDK wraps a refused upgrade in a plain DaytonaError naming the status.
    with pytest.raises(DaytonaError, match="404"):
        sandbox.process.connect_pty_session("no-such-pty")


# -- raw WebSocket ------------------------------------------------------------------


async def test_the_handshake_echoes_exit_control_and_reports_the_exit_in_the_close(
    sandbox: Sandbox, toolbox: httpx.Client, engine: EngineServer
) -> None:
    pty_id = _create(toolbox, sandbox)
    async with _attach(engine, sandbox, pty_id) as socket:
        assert socket.subprotocol == EXIT_CONTROL
        await _connected(socket)
        await socket.send(b"exit 4\n")
        frames = await _drain(socket)
    assert json.loads(frames[-1]) == {
        "type": "control",
        "status": "exited",
        "exitCode": 4,
        "exitReason": "non-zero exit",
    }
    assert socket.close_code == 1011
    assert json.loads(socket.close_reason or "") == {"exitCode": 4, "exitReason": "non-zero exit"}
    resize = await _rest(
        toolbox, "POST", f"/{sandbox.id}/process/pty/{pty_id}/resize", json={"cols": 90, "rows": 9}
    )
    assert resize.status_code == 410


async def test_a_clean_exit_closes_with_1000(
    sandbox: Sandbox, toolbox: httpx.Client, engine: EngineServer
) -> None:
    pty_id = _create(toolbox, sandbox)
    async with _attach(engine, sandbox, pty_id) as socket:
        await _connected(socket)
        await socket.send("exit\n")  # text frames are input too
        await _drain(socket)
    assert socket.close_code == 1000
    assert json.loads(socket.close_reason or "") == {"exitCode": 0}


async def test_create_connect_takes_size_cwd_and_the_env_subprotocol(
    sandbox: Sandbox, engine: EngineServer
) -> None:
    envs = base64.urlsafe_b64encode(json.dumps({"COLOUR": "teal"}).encode()).rstrip(b"=")
    url = _ws_url(
        engine, sandbox, f"/process/pty/create-connect?id={_pty_id()}&cols=77&rows=11&cwd=/tmp"
    )
    protocols = [EXIT_CONTROL, f"X-Daytona-Pty-Envs~{envs.decode()}"]
    async with connect(url, additional_headers=_headers(engine), subprotocols=protocols) as socket:  # type: ignore[arg-type]
        await _connected(socket)
        await socket.send(b"echo $COLOUR $(pwd); stty size\n")
        seen = await _read_until(socket, b"11 77")
        assert b"teal /tmp" in seen
        await socket.send(b"exit\n")


async def test_a_lazy_pty_starts_on_first_connect_and_a_late_client_learns_the_exit(
    sandbox: Sandbox, toolbox: httpx.Client, engine: EngineServer
) -> None:
    pty_id = _create(toolbox, sandbox, lazyStart=True)
    info = (await _rest(toolbox, "GET", f"/{sandbox.id}/process/pty/{pty_id}")).json()
    assert (info["active"], info["lazyStart"]) == (False, True)
    async with _attach(engine, sandbox, pty_id) as socket_:
        await _connected(socket_)
        info = (await _rest(toolbox, "GET", f"/{sandbox.id}/process/pty/{pty_id}")).json()
        assert info["active"] is True
        await socket_.send(b"exit 2\n")
        await _drain(socket_)
    async with _attach(engine, sandbox, pty_id) as late:
        await _connected(late)
        frames = await _drain(late)
    assert json.loads(frames[-1])["exitCode"] == 2
    assert (late.close_code, json.loads(late.close_reason or "")["exitCode"]) == (1011, 2)


async def test_ctrl_c_interrupts_the_foreground_program_and_the_shell_lives_on(
    sandbox: Sandbox, toolbox: httpx.Client, engine: EngineServer
) -> None:
    pty_id = _create(toolbox, sandbox)
    async with _attach(engine, sandbox, pty_id) as socket_:
        await _connected(socket_)
        await socket_.send(b"sleep 30; echo not-interrupted\n")
        seen = await _read_until(socket_, b"not-interrupted\r\n")  # the echo of the line
        await asyncio.sleep(0.3)
        await socket_.send(b"\x03")
        # The tty drops input typed after ^C until the shell is back: wait for its prompt.
        seen += await _read_until(socket_, b"$ ")
        await socket_.send(b"echo after-$((1+1))\n")
        seen += await _read_until(socket_, b"after-2", seconds=5)
        assert b"\nnot-interrupted" not in seen  # only in the echo of the typed line
    info = (await _rest(toolbox, "GET", f"/{sandbox.id}/process/pty/{pty_id}")).json()
    assert info["active"] is True
    await _rest(toolbox, "DELETE", f"/{sandbox.id}/process/pty/{pty_id}")


async def test_several_clients_see_the_same_output_and_may_all_type(
    sandbox: Sandbox, toolbox: httpx.Client, engine: EngineServer
) -> None:
    pty_id = _create(toolbox, sandbox)
    async with _attach(engine, sandbox, pty_id) as one, _attach(engine, sandbox, pty_id) as two:
        await _connected(one)
        await _connected(two)
        await one.send(b"echo from-$((40+1))\n")
        await _read_until(one, b"from-41")
        await _read_until(two, b"from-41")
        await two.send(b"echo from-$((40+2))\n")
        await _read_until(one, b"from-42")
        await _read_until(two, b"from-42")
    assert (await _rest(toolbox, "GET", f"/{sandbox.id}/process/pty/{pty_id}")).json()[
        "active"
    ] is True
    await _rest(toolbox, "DELETE", f"/{sandbox.id}/process/pty/{pty_id}")


async def test_a_dropped_client_leaves_the_shell_running_for_a_reattach(
    sandbox: Sandbox, toolbox: httpx.Client, engine: EngineServer
) -> None:
    pty_id = _create(toolbox, sandbox)
    async with _attach(engine, sandbox, pty_id) as socket:
        await _connected(socket)
        await socket.send(b"SECRET=kept-$((6*7))\n")
        await asyncio.sleep(0.2)
        socket.transport.abort()  # the client vanishes without a close handshake
    async with _attach(engine, sandbox, pty_id, "?replay=raw") as socket:
        await _connected(socket)
        replay = await asyncio.wait_for(socket.recv(), 10)
        assert b"SECRET=kept" in replay  # the scrollback
        await socket.send(b"echo value=$SECRET\n")
        await _read_until(socket, b"value=kept-42")
    async with _attach(engine, sandbox, pty_id, "?replay=screen") as socket:
        await _connected(socket)
        screen = await asyncio.wait_for(socket.recv(), 10)
        assert isinstance(screen, bytes)
        assert screen.startswith(b"\x1b[H\x1b[2J")
        assert b"value=kept-42" in screen
    assert (await _rest(toolbox, "DELETE", f"/{sandbox.id}/process/pty/{pty_id}")).json() == {}


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _stalled_client(engine: EngineServer, sandbox: Sandbox, pty_id: str) -> socket.socket:
    """A WebSocket client that upgrades and then never reads (client libraries keep
    reading into their own memory, which would hide the stall)."""
    sock = _small_socket(engine)
    request = (
        f"GET /toolbox/{sandbox.id}/process/pty/{pty_id}/connect HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: Bearer {engine.api_key}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    sock.sendall(request.encode())
    return sock


async def test_a_client_that_stops_reading_is_closed_with_1008_and_others_carry_on(
    sandbox: Sandbox, toolbox: httpx.Client, engine: EngineServer
) -> None:
    assert engine.process is not None
    pty_id = _create(toolbox, sandbox)
    stalled = _stalled_client(engine, sandbox, pty_id)
    await asyncio.sleep(0.2)
    before = _rss_kib(engine.process.pid)
    async with _attach(engine, sandbox, pty_id) as fast:
        await _connected(fast)
        await fast.send(b"head -c 12000000 /dev/zero | tr '\\0' x; echo; echo flood-$((1+1))\n")
        await _read_until(fast, b"flood-2", seconds=60)
        # 12 MB went by; the stalled client's share was not kept for it.
        assert _rss_kib(engine.process.pid) - before < 16 * 1024
        received = b""
        stalled.settimeout(10)
        while chunk := await asyncio.to_thread(stalled.recv, 1 << 20):
            received = received[-4096:] + chunk
        stalled.close()
        # A close frame: opcode 8, then the code 1008 and the reason.
        assert received.endswith(b"\x88\x0f\x03\xf0slow consumer")
        await fast.send(b"echo alive\n")
        await _read_until(fast, b"alive")
    await _rest(toolbox, "DELETE", f"/{sandbox.id}/process/pty/{pty_id}")


async def test_the_server_answers_pings(
    sandbox: Sandbox, toolbox: httpx.Client, engine: EngineServer
) -> None:
    pty_id = _create(toolbox, sandbox)
    async with _attach(engine, sandbox, pty_id) as socket:
        await _connected(socket)
        latency = await asyncio.wait_for(await socket.ping(), 5)
        assert latency >= 0
    await _rest(toolbox, "DELETE", f"/{sandbox.id}/process/pty/{pty_id}")


async def test_an_oversized_input_frame_closes_with_1009_and_the_shell_survives(
    sandbox: Sandbox, toolbox: httpx.Client, engine: EngineServer
) -> None:
    pty_id = _create(toolbox, sandbox)
    async with _attach(engine, sandbox, pty_id) as socket:
        await _connected(socket)
        await socket.send(b"\x00\xff garbage \x1b[999;999R" + b"y" * (70 << 10))
        await _drain(socket)
        assert socket.close_code == 1009
    assert (await _rest(toolbox, "GET", f"/{sandbox.id}/process/pty/{pty_id}")).json()[
        "active"
    ] is True
    await _rest(toolbox, "DELETE", f"/{sandbox.id}/process/pty/{pty_id}")


# -- bad input ----------------------------------------------------------------------


BAD_SIZES = [
    {"cols": 0, "rows": 24},
    {"cols": 100000, "rows": 24},
    {"cols": 80, "rows": 0},
    {"cols": "80", "rows": 24},
    {"cols": 80},
]


@pytest.mark.parametrize("size", BAD_SIZES)
def test_a_resize_out_of_range_is_400(
    sandbox: Sandbox, toolbox: httpx.Client, size: dict[str, Any]
) -> None:
    pty_id = _create(toolbox, sandbox)
    response = toolbox.post(f"/{sandbox.id}/process/pty/{pty_id}/resize", json=size)
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400
    toolbox.delete(f"/{sandbox.id}/process/pty/{pty_id}")


def test_unknown_pty_ids_are_404_and_duplicates_409(
    sandbox: Sandbox, toolbox: httpx.Client
) -> None:
    for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/resize")):
        response = toolbox.request(
            method, f"/{sandbox.id}/process/pty/nope{path}", json={"cols": 80, "rows": 24}
        )
        assert response.status_code == 404
        assert {"statusCode", "message", "error"} <= set(response.json())
    pty_id = _create(toolbox, sandbox)
    again = toolbox.post(f"/{sandbox.id}/process/pty", json={"id": pty_id})
    assert again.status_code == 409
    toolbox.delete(f"/{sandbox.id}/process/pty/{pty_id}")


@pytest.mark.parametrize(
    "body",
    [{}, {"id": ""}, {"id": "x", "cols": 0}, {"id": "x", "envs": {"1A": "b"}}, {"id": "x", "z": 1}],
)
def test_a_malformed_pty_create_is_400(sandbox: Sandbox, toolbox: httpx.Client, body: Any) -> None:
    response = toolbox.post(f"/{sandbox.id}/process/pty", json=body)
    assert response.status_code == 400, response.text


async def test_a_garbage_env_subprotocol_is_refused_with_400(
    sandbox: Sandbox, engine: EngineServer
) -> None:
    url = _ws_url(engine, sandbox, f"/process/pty/create-connect?id={_pty_id()}")
    protocols = [EXIT_CONTROL, "X-Daytona-Pty-Envs~!!notbase64!!"]
    with pytest.raises(websockets.InvalidStatus) as raised:
        async with connect(url, additional_headers=_headers(engine), subprotocols=protocols):  # type: ignore[arg-type]
            pass
    assert raised.value.response.status_code == 400


def test_the_sdk_reports_a_bad_create_connect_as_an_error(sandbox: Sandbox) -> None:
    with pytest.raises(DaytonaError):
        sandbox.process.create_pty_session(_pty_id(), pty_size=PtySize(rows=24, cols=100000))


async def test_the_async_sdk_follows_logs_and_drives_a_pty_over_aiohttp(
    sandbox: Sandbox, engine: EngineServer
) -> None:
    config = DaytonaConfig(api_url=engine.api_url, api_key=engine.api_key)
    async with AsyncDaytona(config) as client:
        process = (await client.get(sandbox.id)).process
        await process.create_session("async-sdk")
        request = SessionExecuteRequest(command="echo o1; echo e1 >&2; echo o2", run_async=True)
        cmd_id = (await process.execute_session_command("async-sdk", request)).cmd_id
        out: list[str] = []
        err: list[str] = []
        await process.get_session_command_logs_async("async-sdk", cmd_id, out.append, err.append)
        assert ("".join(out), "".join(err)) == ("o1\no2\n", "e1\n")
        data = bytearray()
        handle = await process.create_pty_session(
            _pty_id(), on_data=data.extend, envs={"Z": "zed"}, pty_size=PtySize(rows=20, cols=70)
        )
        await handle.send_input("echo $Z; stty size; exit 5\n")
        assert (await handle.wait()).exit_code == 5
        assert b"zed" in data
        assert b"20 70" in data


async def test_typing_in_a_terminal_counts_as_sandbox_activity(
    sandbox: Sandbox, toolbox: httpx.Client, engine: EngineServer
) -> None:
    pty_id = _create(toolbox, sandbox)
    async with _attach(engine, sandbox, pty_id) as socket_:
        await _connected(socket_)
        with engine.client() as api:
            before = (await asyncio.to_thread(api.get, f"/sandbox/{sandbox.id}")).json()
            await asyncio.sleep(1.2)  # activity is recorded at one-second resolution
            await socket_.send(b"echo typed\n")
            await _read_until(socket_, b"typed\r\n")
            after = (await asyncio.to_thread(api.get, f"/sandbox/{sandbox.id}")).json()
    assert after["lastActivityAt"] > before["lastActivityAt"]
    await _rest(toolbox, "DELETE", f"/{sandbox.id}/process/pty/{pty_id}")


def _processes(toolbox: httpx.Client, sandbox: Sandbox, needle: str) -> int:
    reply = toolbox.post(f"/{sandbox.id}/process/execute", json={"command": "ps -eo args"})
    return sum(needle in line for line in reply.json()["result"].splitlines())


def test_a_pty_or_session_killed_right_after_it_starts_leaves_no_process_behind(
    sandbox: Sandbox, toolbox: httpx.Client
) -> None:
    shells_before = _processes(toolbox, sandbox, "bash -i")
    for _ in range(5):
        pty_id = _create(toolbox, sandbox)
        assert toolbox.delete(f"/{sandbox.id}/process/pty/{pty_id}").status_code == 200
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    toolbox.post(f"/{sandbox.id}/process/session", json={"sessionId": session_id})
    command = {"command": "sleep 60.0417", "runAsync": True}
    toolbox.post(f"/{sandbox.id}/process/session/{session_id}/exec", json=command)
    toolbox.delete(f"/{sandbox.id}/process/session/{session_id}")
    assert _processes(toolbox, sandbox, "bash -i") == shells_before
    assert _processes(toolbox, sandbox, "sleep 60.0417") == 0
