"""The live list: a change made through the engine's API reaches every open page."""

import asyncio
import time

import httpx
import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from dashboard import daytona
from dashboard.asgi import application
from dashboard.sandboxes import live
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://127.0.0.1:8000")


async def connect(user=None, origin=ORIGIN) -> tuple[WebsocketCommunicator, bool]:
    headers = [origin, (b"host", b"127.0.0.1:8000")]
    if user is not None:
        client = await database_sync_to_async(client_for)(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    communicator = WebsocketCommunicator(application, "/ws/sandboxes/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    return communicator, connected


async def next_message_about(communicator, sandbox_id: str, seconds: float = 5) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no message about {sandbox_id} within {seconds} s"
        message = await communicator.receive_json_from(timeout=remaining)
        if message.get("id") == sandbox_id:
            return message


@pytest.fixture(params=["stream", "poll"])
def mode(request, monkeypatch) -> str:
    """Follow the engine's Socket.IO stream, or (a Daytona without one) poll it."""
    if request.param == "poll":

        async def no_stream(*args, **kwargs):
            raise daytona.Unavailable("no stream here")

        monkeypatch.setattr(daytona, "follow_sandbox_events", no_stream)
    return request.param


async def until_watching(mode: str = "stream", seconds: float = 10, knows: str = "") -> None:
    """Wait until the shared watch has its first picture (and, streaming, its stream),
    and, given a sandbox id, a picture with that sandbox in it: a watch an earlier test
    left running may have an older one, and would then call a change a creation."""
    deadline = time.monotonic() + seconds
    watch = live._watches[live._key()]
    while not (
        watch.polls >= 1
        and (watch.streaming or mode == "poll")
        and (not knows or knows in watch.listed)
    ):
        assert time.monotonic() < deadline, "the watch never started"
        await asyncio.sleep(0.05)
    assert watch.streaming is (mode == "stream")


async def test_a_state_change_made_through_the_engine_reaches_the_open_list_within_two_seconds(
    daytona_engine, make_sandbox, member_user, other_member, mode
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    watcher, connected = await connect(member_user)
    other, other_connected = await connect(other_member)
    assert connected and other_connected
    try:
        await until_watching(mode, knows=sandbox["id"])
        async with httpx.AsyncClient(
            base_url=daytona_engine.api_url,
            headers={"Authorization": f"Bearer {daytona_engine.api_key}"},
        ) as api:
            started = time.monotonic()
            assert (await api.post(f"/sandbox/{sandbox['id']}/stop")).status_code == 200
        message = await next_message_about(watcher, sandbox["id"])
        if message["type"] == "sandbox.created":
            # The sandbox was made before the page opened; a watch that met it only now
            # announces it first. The change is what this test times.
            message = await next_message_about(watcher, sandbox["id"])
        latency = time.monotonic() - started
        assert message["type"] == "sandbox.changed"
        assert message["state"] in ("stopping", "stopped")
        assert latency < 2.0
        # Rendered for the person watching: the owner gets working buttons...
        assert f'<tr id="sb-{sandbox["id"]}"' in message["row"]
        assert "hx-post=" in message["row"]
        # ...someone else the same row, read-only.
        theirs = await next_message_about(other, sandbox["id"])
        assert "hx-post=" not in theirs["row"]
    finally:
        await watcher.disconnect()
        await other.disconnect()


async def test_many_watchers_share_one_poll(daytona_engine, member_user) -> None:
    watchers = [await connect(member_user) for _ in range(4)]
    try:
        assert all(ok for _, ok in watchers)
        watch = live._watches[live._key()]
        assert watch.watchers == 4
        await asyncio.sleep(2.2)
        # One stream (and a rare poll) for everyone, not one per watcher.
        assert watch.streaming
        assert 1 <= watch.polls <= 2
    finally:
        for communicator, _ in watchers:
            await communicator.disconnect()
    assert live._key() not in live._watches


async def test_a_new_sandbox_is_announced(daytona_engine, make_sandbox, viewer_user) -> None:
    watcher, connected = await connect(viewer_user)
    assert connected
    try:
        await until_watching()
        sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
        message = await next_message_about(watcher, sandbox["id"])
        assert message["type"] == "sandbox.created"
    finally:
        await watcher.disconnect()


async def test_an_anonymous_browser_is_refused(daytona_engine) -> None:
    _communicator, connected = await connect(None)
    assert not connected


async def test_another_sites_page_is_refused(daytona_engine, member_user) -> None:
    _communicator, connected = await connect(member_user, origin=(b"origin", b"http://evil.test"))
    assert not connected
