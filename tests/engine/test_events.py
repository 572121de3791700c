"""The Socket.IO event stream: authenticated by the CONNECT token, every change pushed."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import socketio
from daytona import Daytona

from tests.engine_server import EngineServer

WAIT = 15.0


class Recorder:
    """A python-socketio client that keeps every event it receives."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.client.on("*", self._record)

    async def _record(self, event: str, data: Any) -> None:
        self.events.append((event, data))

    async def wait_for(self, predicate: Any, within: float = WAIT) -> tuple[str, Any]:
        """The first event matching ``predicate(name, data)``, waiting for it."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for name, data in self.events:
                if predicate(name, data):
                    return name, data
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching event; got {[n for n, _ in self.events]}")

    def states_of(self, sandbox_id: str) -> list[tuple[str, str]]:
        """The (oldState, newState) pairs pushed for one sandbox, in order."""
        return [
            (data["oldState"], data["newState"])
            for name, data in self.events
            if name == "sandbox.state.updated" and data["sandbox"]["id"] == sandbox_id
        ]


async def connect(engine: EngineServer, token: str) -> Recorder:
    recorder = Recorder()
    await recorder.client.connect(
        f"http://127.0.0.1:{engine.port}",
        socketio_path="/api/socket.io",
        transports=["websocket"],
        auth={"token": token},
        wait_timeout=5,
    )
    return recorder


@pytest.fixture
async def stream(engine: EngineServer) -> AsyncIterator[Recorder]:
    recorder = await connect(engine, engine.api_key)
    yield recorder
    await recorder.client.disconnect()


@pytest.fixture
async def api_async(engine: EngineServer) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {engine.api_key}"}
    async with httpx.AsyncClient(base_url=engine.api_url, headers=headers, timeout=60) as client:
        yield client


async def test_a_client_with_the_key_sees_a_sandbox_created_and_started(
    stream: Recorder, api_async: httpx.AsyncClient, engine: EngineServer
) -> None:
    response = await api_async.post("/sandbox", json={"autoStopInterval": 0})
    sandbox = response.json()
    try:
        _, created = await stream.wait_for(
            lambda n, d: n == "sandbox.created" and d["id"] == sandbox["id"]
        )
        assert created["state"] == "creating"
        assert created["toolboxProxyUrl"] == engine.toolbox_url
        await stream.wait_for(
            lambda n, d: (
                n == "sandbox.state.updated"
                and d["sandbox"]["id"] == sandbox["id"]
                and d["newState"] == "started"
            )
        )
        # creating -> starting -> started, or creating -> started from a warm sandbox.
        states = stream.states_of(sandbox["id"])
        assert states[0][0] == "creating"
        assert states[-1][1] == "started"
        assert all(a[1] == b[0] for a, b in itertools.pairwise(states))  # a chain
    finally:
        await api_async.delete(f"/sandbox/{sandbox['id']}")
    await stream.wait_for(
        lambda n, d: (
            n == "sandbox.state.updated"
            and d["sandbox"]["id"] == sandbox["id"]
            and d["newState"] == "destroyed"
        )
    )
    _, desired = await stream.wait_for(
        lambda n, d: (
            n == "sandbox.desired-state.updated"
            and d["sandbox"]["id"] == sandbox["id"]
            and d["newDesiredState"] == "destroyed"
        )
    )
    assert desired["oldDesiredState"] == "started"


async def test_a_wrong_or_missing_token_is_refused(engine: EngineServer) -> None:
    for auth in ({"token": "not-the-key"}, {}):
        client = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                f"http://127.0.0.1:{engine.port}",
                socketio_path="/api/socket.io",
                transports=["websocket"],
                auth=auth,
                wait_timeout=5,
            )
        await client.disconnect()


async def test_a_change_made_by_the_engine_itself_is_pushed(
    stream: Recorder, api_async: httpx.AsyncClient, engine: EngineServer
) -> None:
    sandbox = (await api_async.post("/sandbox", json={"autoStopInterval": 0})).json()
    try:
        # Killing the sandbox's own processes: the engine's timer notices, not an API call.
        headers = {"Authorization": f"Bearer {engine.api_key}"}
        async with httpx.AsyncClient(base_url=engine.toolbox_url, headers=headers) as toolbox:
            await toolbox.post(
                f"/{sandbox['id']}/process/execute", json={"command": "kill -9 -1", "timeout": 5}
            )
        _, update = await stream.wait_for(
            lambda n, d: (
                n == "sandbox.state.updated"
                and d["sandbox"]["id"] == sandbox["id"]
                and d["newState"] == "error"
            )
        )
        assert update["oldState"] == "started"
        assert update["sandbox"]["errorReason"]
    finally:
        await api_async.delete(f"/sandbox/{sandbox['id']}")


async def test_volume_and_snapshot_changes_are_pushed(
    stream: Recorder, api_async: httpx.AsyncClient, tmp_path: Any
) -> None:
    volume = (await api_async.post("/volumes", json={"name": "events-volume"})).json()
    await stream.wait_for(lambda n, d: n == "volume.created" and d["id"] == volume["id"])
    await stream.wait_for(
        lambda n, d: (
            n == "volume.state.updated"
            and d["volume"]["id"] == volume["id"]
            and d["newState"] == "ready"
        )
    )
    await api_async.delete(f"/volumes/{volume['id']}")
    await stream.wait_for(
        lambda n, d: (
            n == "volume.state.updated"
            and d["volume"]["id"] == volume["id"]
            and d["newState"] == "deleted"
        )
    )
    (tmp_path / "hello.txt").write_text("hi\n")
    body = {"name": "events-snapshot", "imageName": f"dir:{tmp_path}"}
    snapshot = (await api_async.post("/snapshots", json=body)).json()
    await stream.wait_for(lambda n, d: n == "snapshot.created" and d["id"] == snapshot["id"])
    await stream.wait_for(
        lambda n, d: (
            n == "snapshot.state.updated"
            and d["snapshot"]["id"] == snapshot["id"]
            and d["newState"] == "active"
        )
    )
    await api_async.delete(f"/snapshots/{snapshot['id']}")
    await stream.wait_for(lambda n, d: n == "snapshot.removed" and d["id"] == snapshot["id"])


def test_the_sdk_waits_finish_on_the_pushed_event(daytona: Daytona) -> None:
    started = time.monotonic()
    sandbox = daytona.create()
    try:
        # Polling alone ends a wait on a 1 s tick; the pushed event ends it at once.
        assert time.monotonic() - started < 5
        sandbox.stop()
        assert sandbox.state == "stopped"
        sandbox.start()
        assert sandbox.state == "started"
    finally:
        sandbox.delete()
