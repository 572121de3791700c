"""Frames a consumer does not expect: every WebSocket route answers them with a defined
close code (1003 binary where text is expected, 1007 not JSON, 1008 not a message of
its protocol, 1009 too big) and one log line, never a traceback or a dropped socket.

Hypothesis makes the frames; each example opens a fresh socket to the real ASGI app
(the terminal and logs against a sandbox on the embedded engine).
"""

import asyncio
import json
import logging

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import client_for
from tests.terminal.conftest import ORIGIN, make_sandbox, new_session  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

DEFINED = {1003, 1007, 1008, 1009}
FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


def messages(types: list[str]) -> st.SearchStrategy[dict]:
    """JSON objects shaped like the protocol's messages, with any values."""
    return st.fixed_dictionaries(
        {"type": st.sampled_from([*types, "", "nope", "PING"])},
        optional={
            name: json_values
            for name in ("bytes", "cols", "rows", "session", "command", "after", "extra")
        },
    )


def text_frames(types: list[str]) -> st.SearchStrategy[dict]:
    return st.one_of(
        st.text(max_size=200),
        st.text(min_size=5000, max_size=20_000, alphabet="ab{}"),
        json_values.map(json.dumps),
        messages(types).map(json.dumps),
    ).map(lambda text: {"text_data": text})


binary_frames = st.binary(max_size=200).map(lambda data: {"bytes_data": data})


async def exchange(path: str, cookie: bytes, frames: list[dict]) -> int | None:
    """Send `frames` and return the close code (None if the socket stays open); the
    consumer raising anything fails here."""
    from dashboard.asgi import application

    ws = WebsocketCommunicator(
        application, path, [ORIGIN, (b"host", b"127.0.0.1:8000"), (b"cookie", cookie)]
    )
    connected, code = await ws.connect(timeout=15)
    assert connected, code
    closed = None
    try:
        for frame in frames:
            # Straight to the app: the communicator's send_to refuses empty frames.
            text, data = frame.get("text_data"), frame.get("bytes_data")
            await ws.send_input({"type": "websocket.receive", "text": text, "bytes": data})
        while closed is None:
            try:
                message = await asyncio.wait_for(ws.output_queue.get(), 0.3)
            except TimeoutError:
                break
            if message["type"] == "websocket.close":
                closed = message["code"]
                assert message.get("reason"), message
    finally:
        if ws.future.done() and ws.future.exception() is not None:
            raise ws.future.exception()
        await ws.disconnect()
    return closed


@pytest.fixture
async def cookie(admin_user) -> bytes:
    client = await database_sync_to_async(client_for)(admin_user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.fixture
async def sandbox_id(make_sandbox) -> str:  # noqa: F811
    return (await asyncio.to_thread(make_sandbox, owner="ada"))["id"]


def no_traceback(caplog) -> None:
    problems = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not problems, [r.getMessage() for r in problems]


@FUZZ
@given(frames=st.lists(st.one_of(text_frames(["ping"]), binary_frames), min_size=1, max_size=3))
async def test_the_live_list_closes_bad_frames_with_a_defined_code(
    daytona_engine, cookie, caplog, frames
) -> None:
    code = await exchange("/ws/sandboxes/", cookie, frames)
    assert code is None or code in DEFINED
    if any(f.get("bytes_data") is not None for f in frames):
        assert code is not None  # binary is never a message here
    no_traceback(caplog)


@FUZZ
@given(frames=st.lists(text_frames(["resize", "ack", "ping", "pong"]), min_size=1, max_size=3))
async def test_the_terminal_closes_bad_frames_with_a_defined_code(
    sandbox_id, cookie, caplog, frames
) -> None:
    # Binary frames are keys for the shell, not frames to refuse: only text is fuzzed.
    path = f"/ws/sandboxes/{sandbox_id}/terminal/{SESSION}/?cols=80&rows=24"
    code = await exchange(path, cookie, frames)
    assert code is None or code in DEFINED
    no_traceback(caplog)


@FUZZ
@given(
    frames=st.lists(
        st.one_of(text_frames(["follow", "ack", "ping"]), binary_frames), min_size=1, max_size=3
    )
)
async def test_the_logs_close_bad_frames_with_a_defined_code(
    sandbox_id, cookie, caplog, frames
) -> None:
    # No "run": a fuzzed command would run in the sandbox; its checks have their own tests.
    code = await exchange(f"/ws/sandboxes/{sandbox_id}/logs/", cookie, frames)
    assert code is None or code in DEFINED
    if frames[0].get("bytes_data") is not None:
        assert code == 1003
    no_traceback(caplog)


SESSION = new_session()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"bytes_data": b"\x00"}, 1003),
        ({"text_data": "{"}, 1007),
        ({"text_data": '"ping"'}, 1008),
        ({"text_data": '{"type": "subscribe"}'}, 1008),
        ({"text_data": "[" * 5000}, 1009),
    ],
)
async def test_the_live_list_answers_each_kind_of_bad_frame_with_its_code(
    daytona_engine, cookie, caplog, frame, code
) -> None:
    with caplog.at_level(logging.WARNING, logger="dashboard.core.websocket"):
        assert await exchange("/ws/sandboxes/", cookie, [frame]) == code
    logged = [r for r in caplog.records if r.name == "dashboard.core.websocket"]
    assert len(logged) == 1 and f"with {code}" in logged[0].getMessage()
    no_traceback(caplog)


async def test_the_live_list_answers_a_ping(daytona_engine, cookie) -> None:
    assert await exchange("/ws/sandboxes/", cookie, [{"text_data": '{"type": "ping"}'}]) is None
