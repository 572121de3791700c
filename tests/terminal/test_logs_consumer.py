"""The log viewer's consumer against the real ASGI app and the embedded engine."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from dashboard.audit.models import AuditEntry
from tests.conftest import client_for
from tests.terminal.conftest import ORIGIN

pytestmark = pytest.mark.django_db(transaction=True)


async def open_logs(user, sandbox_id: str) -> WebsocketCommunicator:
    from dashboard.asgi import application

    headers = [ORIGIN, (b"host", b"127.0.0.1:8000")]
    if user is not None:
        client = await database_sync_to_async(client_for)(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    communicator = WebsocketCommunicator(
        application, f"/ws/sandboxes/{sandbox_id}/logs/", headers=headers
    )
    communicator.connected, communicator.code = await communicator.connect(timeout=10)
    return communicator


async def collect(ws: WebsocketCommunicator, until: str = "end", limit: float = 20) -> list[dict]:
    messages = []
    async with asyncio.timeout(limit):
        while True:
            message = json.loads(await ws.receive_from(timeout=limit))
            messages.append(message)
            if message["type"] == "lines":
                await ws.send_to(text_data='{"type": "ack"}')
            if message["type"] in (until, "error"):
                return messages


def lines(messages: list[dict]) -> list[list]:
    return [line for m in messages if m["type"] == "lines" for line in m["lines"]]


async def test_a_command_runs_and_its_output_is_followed_with_streams_told_apart(
    make_sandbox, member_user
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    ws = await open_logs(member_user, sandbox["id"])
    assert ws.connected
    command = (
        "for i in 1 2 3; do echo out-$i; echo err-$i >&2; done; "
        "printf '\\033[31mred\\033[0m\\n'; exit 4"
    )
    await ws.send_to(text_data=json.dumps({"type": "run", "command": command}))
    messages = await collect(ws)
    started = messages[0]
    assert started["type"] == "started" and started["text"] == command
    got = lines(messages)
    assert [1, "out-1"] in got and [2, "err-2"] in got and [1, "\x1b[31mred\x1b[0m"] in got
    assert messages[-1] == {"type": "end", "exit_code": 4, "lines": len(got)}
    # The run is in the audit trail, with the command.
    entry = await AuditEntry.objects.filter(action="command.run").afirst()
    assert entry.detail["command"] == command and entry.actor_name == "mel"

    # A reconnecting viewer asks from where it stopped: no gaps, no duplicates.
    again = await open_logs(member_user, sandbox["id"])
    follow = {"type": "follow", "session": started["session"], "command": started["command"]}
    await again.send_to(text_data=json.dumps({**follow, "after": 3}))
    rest = await collect(again)
    assert lines(rest) == got[3:]
    assert rest[0]["first"] == 3
    await ws.disconnect()
    await again.disconnect()


async def test_a_long_log_is_followed_to_the_end_in_acknowledged_batches(
    make_sandbox, member_user
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    ws = await open_logs(member_user, sandbox["id"])
    await ws.send_to(text_data=json.dumps({"type": "run", "command": "seq 1 20000"}))
    messages = await collect(ws, limit=60)
    got = lines(messages)
    assert [line for _, line in got] == [str(i) for i in range(1, 20001)]
    await ws.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"bytes_data": b"\x00\x01"}, 1003),
        ({"text_data": "nope"}, 1007),
        ({"text_data": "[]"}, 1008),
        ({"text_data": '{"type": "shout"}'}, 1008),
        ({"text_data": "x" * 50_000}, 1009),
    ],
)
async def test_a_frame_outside_the_protocol_closes_with_its_code(
    make_sandbox, member_user, frame, code
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    ws = await open_logs(member_user, sandbox["id"])
    await ws.send_to(**frame)
    closed = await ws.receive_output(5)
    assert closed["type"] == "websocket.close" and closed["code"] == code
    assert closed["reason"]
    await ws.disconnect()


async def test_bad_values_get_a_clear_answer(make_sandbox, member_user) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    ws = await open_logs(member_user, sandbox["id"])
    for bad in (
        '{"type": "run", "command": ""}',
        '{"type": "follow"}',
        '{"type": "follow", "session": "s", "command": "c", "after": -1}',
    ):
        await ws.send_to(text_data=bad)
        assert json.loads(await ws.receive_from())["type"] == "error"
    await ws.send_to(text_data=json.dumps({"type": "follow", "session": "nope", "command": "nope"}))
    error = json.loads(await ws.receive_from(timeout=10))
    assert error["type"] == "error"
    await ws.disconnect()


async def test_a_viewer_and_another_member_may_not_read_logs(
    make_sandbox, viewer_user, other_member
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    for person in (viewer_user, other_member):
        ws = await open_logs(person, sandbox["id"])
        assert json.loads(await ws.receive_from())["type"] == "error"
        assert (await ws.receive_output())["code"] == 4403
    anonymous = await open_logs(None, sandbox["id"])
    assert not anonymous.connected


async def test_stop_kills_a_running_command_and_the_follow_says_stopped(
    make_sandbox, member_user, daytona_engine
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    ws = await open_logs(member_user, sandbox["id"])
    await ws.send_to(
        text_data=json.dumps({"type": "run", "command": "echo begun; sleep 60; echo never"})
    )
    messages = await collect(ws, until="lines")
    started = messages[0]
    assert started["type"] == "started"
    await ws.send_to(
        text_data=json.dumps(
            {"type": "stop", "session": started["session"], "command": started["command"]}
        )
    )
    messages = await collect(ws, limit=10)
    assert messages[-1] == {"type": "end", "exit_code": None, "stopped": True}
    assert [1, "never"] not in lines(messages)
    # The command's session (and with it the sleep) is gone from the sandbox.
    with daytona_engine.client() as http:
        toolbox = f"{daytona_engine.toolbox_url}/{sandbox['id']}"
        sessions = http.get(f"{toolbox}/process/session").json()
    assert started["session"] not in {s["sessionId"] for s in sessions}
    entry = await AuditEntry.objects.filter(action="command.stop").afirst()
    assert entry is not None and entry.outcome == "success"
    await ws.disconnect()


async def test_a_long_command_does_not_hold_up_the_next_one(make_sandbox, member_user) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    ws = await open_logs(member_user, sandbox["id"])
    await ws.send_to(text_data=json.dumps({"type": "run", "command": "sleep 60"}))
    first = (await collect(ws, until="started"))[-1]
    await ws.send_to(text_data=json.dumps({"type": "run", "command": "echo quick"}))
    messages = await collect(ws, limit=10)
    assert messages[-1]["type"] == "end" and messages[-1]["exit_code"] == 0
    assert [1, "quick"] in lines(messages)
    second = next(m for m in messages if m["type"] == "started")
    assert second["session"] != first["session"]
    await ws.disconnect()


async def test_stop_refuses_a_command_that_shares_its_session(
    make_sandbox, member_user, daytona_engine
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    with daytona_engine.client() as http:
        base = f"{daytona_engine.toolbox_url}/{sandbox['id']}/process/session"
        assert http.post(base, json={"sessionId": "shared"}).status_code in (200, 201)
        body = {"command": "sleep 30", "runAsync": True}
        command = http.post(f"{base}/shared/exec", json=body).json()["cmdId"]
    ws = await open_logs(member_user, sandbox["id"])
    stop = {"type": "stop", "session": "shared", "command": command}
    await ws.send_to(text_data=json.dumps(stop))
    answer = json.loads(await ws.receive_from(timeout=10))
    assert answer["type"] == "error" and "shares its session" in answer["message"]
    with daytona_engine.client() as http:
        still = http.get(f"{base}/shared/command/{command}").json()
    assert still.get("exitCode") is None
    await ws.disconnect()
