"""Two Sandbar workers sharing PostgreSQL and Redis: what a browser sees when its
requests and WebSockets land on different ones, and when one dies.

Every request and socket names its worker; the engine is the real embedded one.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.multiworker.conftest import LEASE_SECONDS, OWNER, Site, Worker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LEAVE_GRACE_SECONDS = 15.0  # dashboard/terminal/views.py: a left shell's grace period


# -- the engine ----------------------------------------------------------------------------


def _wait_state(site: Site, sandbox_id: str, state: str, seconds: float = 90) -> None:
    with site.engine.client() as api:
        deadline = time.monotonic() + seconds
        while (now := api.get(f"/sandbox/{sandbox_id}").json()["state"]) != state:
            assert time.monotonic() < deadline, f"{sandbox_id} stayed {now}, not {state}"
            time.sleep(0.2)


def _create(site: Site, name: str) -> str:
    body = {"name": name, "labels": {"sandbar.owner": OWNER}}
    with site.engine.client() as api:
        sandbox_id = api.post("/sandbox", json=body).raise_for_status().json()["id"]
    _wait_state(site, sandbox_id, "started")
    return sandbox_id


@pytest.fixture(scope="module")
def sandbox(site_settings: Site) -> str:
    """One started sandbox of the signed-in member's, shared by the module's tests."""
    return _create(site_settings, f"mw-{uuid.uuid4().hex[:8]}")


# -- the browser ---------------------------------------------------------------------------


def _headers(site: Site, worker: Worker) -> dict[str, str]:
    return {"Cookie": f"sessionid={site.cookie}", "Origin": worker.http}


@asynccontextmanager
async def live_list(site: Site, worker: Worker) -> AsyncIterator[ClientConnection]:
    """The sandboxes page's live socket, on `worker`."""
    headers = _headers(site, worker)
    async with connect(f"{worker.ws}/ws/sandboxes/", additional_headers=headers) as ws:
        yield ws


@asynccontextmanager
async def led_lists(
    site: Site, leader: Worker, other: Worker
) -> AsyncIterator[tuple[ClientConnection, ClientConnection]]:
    """A live list on each worker, `leader`'s first and following Daytona before the
    other's opens (so which worker leads is known)."""
    async with live_list(site, leader) as first:
        await until_logged(leader, "live poll ")
        async with live_list(site, other) as second:
            yield first, second


async def next_about(ws: ClientConnection, sandbox_id: str, seconds: float = 20) -> dict:
    """The next message on a live socket about `sandbox_id` (others are skipped)."""
    async with asyncio.timeout(seconds):
        while True:
            message = json.loads(await ws.recv())
            if message.get("id") == sandbox_id:
                return message


async def next_of_type(ws: ClientConnection, kind: str, seconds: float = 20) -> dict:
    async with asyncio.timeout(seconds):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return message


class Terminal:
    """A browser's terminal socket: keys in, screen bytes out."""

    def __init__(self, ws: ClientConnection, hello: dict) -> None:
        self.ws = ws
        self.hello = hello
        self.screen = b""

    @classmethod
    async def open(cls, site: Site, worker: Worker, sandbox_id: str, session: str) -> Terminal:
        url = f"{worker.ws}/ws/sandboxes/{sandbox_id}/terminal/{session}/?cols=100&rows=30"
        ws = await connect(url, additional_headers=_headers(site, worker))
        async with asyncio.timeout(30):
            while True:
                message = await ws.recv()
                if isinstance(message, str) and json.loads(message)["type"] == "hello":
                    return cls(ws, json.loads(message))

    async def type(self, text: str) -> None:
        await self.ws.send(text.encode())

    async def expect(self, pattern: str, seconds: float = 20) -> None:
        """Read until `pattern` (a regex over the bytes seen since the last match) shows."""
        async with asyncio.timeout(seconds):
            while not re.search(pattern.encode(), self.screen):
                message = await self.ws.recv()
                if isinstance(message, bytes):
                    self.screen += message
                elif json.loads(message)["type"] == "exit":
                    raise AssertionError(f"the shell exited: {message}")
        self.screen = b""

    async def close(self) -> None:
        await self.ws.close()


async def post(site: Site, worker: Worker, path: str) -> httpx.Response:
    """A form POST from the signed-in browser (CSRF cookie and header, as the page sends)."""
    token = secrets.token_hex(16)
    headers = {**_headers(site, worker), "X-CSRFToken": token}
    headers["Cookie"] += f"; csrftoken={token}"
    async with httpx.AsyncClient(base_url=worker.http, timeout=60) as http:
        return await http.post(path, headers=headers)


async def drain(ws: ClientConnection, seconds: float = 10) -> None:
    """Read until the socket drops (ConnectionClosed) or `seconds` pass (TimeoutError)."""
    async with asyncio.timeout(seconds):
        while True:
            await ws.recv()


async def until_logged(worker: Worker, text: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while text not in worker.log():
        assert time.monotonic() < deadline, f"worker {worker.name} never logged {text!r}"
        await asyncio.sleep(0.1)


def leads(worker: Worker, job: str) -> int:
    """How many times `worker` began leading `job` (its lease's log line)."""
    return len(re.findall(rf"{re.escape(job)}[^\n]*: this process leads", worker.log()))


def polls(worker: Worker) -> int:
    """How many times `worker` read Daytona's list for the live pages."""
    return worker.log().count("live poll ")


# -- the tests -----------------------------------------------------------------------------


async def test_a_list_open_on_one_worker_sees_a_sandbox_started_through_the_other(
    site: Site, sandbox: str
) -> None:
    a, b = site.worker("a"), site.worker("b")
    with site.engine.client() as api:
        api.post(f"/sandbox/{sandbox}/stop").raise_for_status()
    await asyncio.to_thread(_wait_state, site, sandbox, "stopped")
    async with led_lists(site, a, b) as (_, on_b):
        # A follows Daytona, B only relays what A sends through Redis.
        started = await post(site, a, f"/sandboxes/{sandbox}/start/")
        assert started.status_code == 302, started.text[:500]
        message = await next_about(on_b, sandbox)
        while message["state"] != "started":
            message = await next_about(on_b, sandbox, seconds=60)
        assert message["type"] == "sandbox.changed"
        assert f'id="sb-{sandbox}"' in message["row"]  # rendered by B, for this person
    assert polls(b) == 0 and leads(b, "live sandboxes") == 0
    assert ("sandbox.start", sandbox) in [(action, target) for _, action, target in site.audit()]


async def test_a_terminal_opened_on_one_worker_reattaches_to_the_same_shell_on_the_other(
    site: Site, sandbox: str
) -> None:
    a, b = site.worker("a"), site.worker("b")
    session = uuid.uuid4().hex
    mark = secrets.token_hex(4)
    first = await Terminal.open(site, a, sandbox, session)
    assert first.hello["reattached"] is False
    await first.type(f"export SANDBAR_MARK={mark}\r")
    await first.type("echo set-$SANDBAR_MARK-done\r")
    await first.expect(f"set-{mark}-done")
    await first.close()
    second = await Terminal.open(site, b, sandbox, session)
    try:
        assert second.hello["reattached"] is True
        await second.type("echo got-$SANDBAR_MARK-back\r")
        await second.expect(f"got-{mark}-back")
    finally:
        await second.close()


async def test_the_watchers_run_in_one_worker_of_two(site: Site, sandbox: str) -> None:
    a, b = site.worker("a"), site.worker("b")
    session = uuid.uuid4().hex
    async with led_lists(site, a, b):
        on_a = await Terminal.open(site, a, sandbox, session)
        on_b = await Terminal.open(site, b, sandbox, session)
        try:
            # Two lease lifetimes and more: a standby that wrongly took over would show.
            await asyncio.sleep(2 * float(LEASE_SECONDS) + 2)
            assert leads(a, "live sandboxes") + leads(b, "live sandboxes") == 1
            assert polls(a) >= 1 and polls(b) == 0
            # The per-sandbox label watch of its open terminals: one of the two, too.
            assert leads(a, f"labels {sandbox}") + leads(b, f"labels {sandbox}") == 1
        finally:
            await on_a.close()
            await on_b.close()


async def test_a_shell_stays_open_while_a_tab_on_another_worker_holds_it(
    site: Site, sandbox: str
) -> None:
    a, b = site.worker("a"), site.worker("b")
    session = uuid.uuid4().hex
    on_a = await Terminal.open(site, a, sandbox, session)
    on_b = await Terminal.open(site, b, sandbox, session)
    try:
        await on_a.close()
        # A's tab goes (the page's keepalive "leave"): A closes the shell after the grace
        # period unless a tab is attached anywhere, and B's is.
        left = await post(site, a, f"/sandboxes/{sandbox}/terminals/{session}/leave/")
        assert left.status_code == 204, left.text[:500]
        await asyncio.sleep(LEAVE_GRACE_SECONDS + 3)
        await on_b.type("echo still-$((6 * 7))-here\r")
        await on_b.expect("still-42-here")
    finally:
        await on_b.close()


async def test_a_worker_killed_mid_stream_costs_its_clients_a_reconnect_and_nothing_more(
    site: Site, sandbox: str
) -> None:
    a, b = site.worker("a"), site.worker("b")
    session = uuid.uuid4().hex
    mark = secrets.token_hex(4)
    # A leads: its death leaves the job to B.
    async with led_lists(site, a, b) as (list_on_a, list_on_b):
        terminal = await Terminal.open(site, a, sandbox, session)
        await terminal.type(f"export SANDBAR_MARK={mark}\r")
        # Output streaming when A dies.
        await terminal.type("while true; do echo tick; sleep 0.1; done\r")
        await terminal.expect("tick\r\ntick")
        before = site.audit()
        assert ("terminal.open", sandbox) in [(action, target) for _, action, target in before]
        a.kill()
        for dropped in (terminal.ws, list_on_a):
            with pytest.raises(ConnectionClosed):
                await drain(dropped)

        # The browser reconnects (the proxy now sends it to B): the same shell, still
        # running its loop.
        again = await Terminal.open(site, b, sandbox, session)
        try:
            assert again.hello["reattached"] is True
            await again.expect("tick")
            await again.type("\x03")
            await again.type("echo back-$SANDBAR_MARK-again\r")
            await again.expect(f"back-{mark}-again")
        finally:
            await again.close()

        # B takes the live list over once A's lease lapses, and has the lists re-read
        # what A may not have told; then a sandbox made straight in Daytona reaches the
        # list that was on B all along and the one that came back.
        async with live_list(site, b) as list_back:
            await until_logged(b, "this process leads (lease live:", seconds=30)
            assert (await next_of_type(list_on_b, "sandbox.available"))["type"]
            other = await asyncio.to_thread(_create, site, f"mw-{uuid.uuid4().hex[:8]}")
            for ws in (list_on_b, list_back):
                message = await next_about(ws, other, seconds=30)
                assert message["type"] in ("sandbox.created", "sandbox.changed")
        assert leads(b, "live sandboxes") == 1

    after = site.audit()
    assert set(before) <= set(after)  # nothing A had written is gone
    assert [seq for seq, _, _ in after] == list(range(1, len(after) + 1))
    site.manage("verify_audit_chain")
    with site.engine.client() as api:
        api.delete(f"/sandbox/{other}")
