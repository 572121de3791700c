"""Open WebSockets end with the sign-in that opened them, within a second of the change.

Each trigger is made the way a person makes it (a sign-out, the Team page, the
account page, an owner label changed in Daytona) against the real ASGI app and the
embedded engine; the open terminal, logs and live list must close with a code and a
reason the page can show, and HTTP keeps refusing as before.
"""

import asyncio
import json
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

from dashboard.accounts.access import OWNER_LABEL
from dashboard.accounts.models import ConnectionQuota, Role
from tests.conftest import PASSWORD, client_for
from tests.served_client import ServedClient
from tests.terminal.conftest import ORIGIN, new_session

pytestmark = pytest.mark.django_db(transaction=True)

HOST = (b"host", b"127.0.0.1:8000")
WITHIN = 1.0  # seconds from the change to the close


def path_of(kind: str, sandbox_id: str) -> str:
    return {
        "terminal": f"/ws/sandboxes/{sandbox_id}/terminal/{new_session()}/?cols=80&rows=24",
        "logs": f"/ws/sandboxes/{sandbox_id}/logs/",
        "live list": "/ws/sandboxes/",
    }[kind]


async def open_socket(client: ServedClient, kind: str, sandbox_id: str) -> WebsocketCommunicator:
    from dashboard.asgi import application

    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    ws = WebsocketCommunicator(application, path_of(kind, sandbox_id), [ORIGIN, HOST, cookie])
    connected, code = await ws.connect(timeout=15)
    assert connected, code
    if kind == "terminal":
        await until_message(ws, lambda m: m.get("type") == "hello")
    # The watch starts right after the handshake: let it settle before the change.
    await asyncio.sleep(0.2)
    return ws


async def until_message(ws: WebsocketCommunicator, wanted, seconds: float = 10) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = await ws.receive_output(deadline - time.monotonic())
        if message["type"] == "websocket.send" and message.get("text"):
            parsed = json.loads(message["text"])
            if wanted(parsed):
                return parsed
        assert message["type"] != "websocket.close", message
    raise AssertionError("no such message")


async def closed_with(ws: WebsocketCommunicator, seconds: float = WITHIN) -> tuple[dict, float]:
    """The close message (and how long it took), skipping output and pings before it."""
    started = time.monotonic()
    texts: list[str] = []
    while True:
        remaining = seconds - (time.monotonic() - started)
        assert remaining > 0, f"still open after {seconds} s; last texts {texts[-3:]}"
        try:
            message = await asyncio.wait_for(ws.output_queue.get(), remaining)
        except TimeoutError:
            continue
        if message["type"] == "websocket.close":
            return message, time.monotonic() - started
        if message.get("text"):
            texts.append(message["text"])


async def still_open(ws: WebsocketCommunicator, seconds: float = 1.5) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            message = await asyncio.wait_for(ws.output_queue.get(), 0.1)
        except TimeoutError:
            continue
        assert message["type"] != "websocket.close", message


@pytest.fixture
def mels_sandbox(daytona_engine, make_sandbox) -> dict:
    return make_sandbox(owner="mel")


KINDS = ["terminal", "logs", "live list"]


@pytest.mark.parametrize("kind", KINDS)
async def test_signing_out_ends_that_sessions_sockets_only(kind, mels_sandbox, member_user):
    signed_out = await database_sync_to_async(client_for)(member_user)
    elsewhere = await database_sync_to_async(client_for)(member_user)
    ws = await open_socket(signed_out, kind, mels_sandbox["id"])
    other = await open_socket(elsewhere, kind, mels_sandbox["id"])
    assert (await signed_out.post(reverse("logout"))).status_code == 302
    close, _took = await closed_with(ws)
    assert close["code"] == 4401 and close["reason"] == "You signed out."
    await still_open(other)  # the same person's other browser stays signed in
    await ws.disconnect()
    await other.disconnect()


@pytest.mark.parametrize("kind", KINDS)
async def test_deactivating_someone_ends_their_sockets(kind, mels_sandbox, member_user, admin_user):
    client = await database_sync_to_async(client_for)(member_user)
    admin = await database_sync_to_async(client_for)(admin_user)
    ws = await open_socket(client, kind, mels_sandbox["id"])
    url = reverse("team_active", args=[member_user.pk])
    assert (await admin.post(url, {"active": "false"})).status_code == 302
    close, _ = await closed_with(ws)
    assert close["code"] == 4401 and "deactivated" in close["reason"]
    # HTTP and a new socket are refused as before.
    assert (await client.get(reverse("sandboxes"))).status_code == 302
    await ws.disconnect()


@pytest.mark.parametrize("kind", ["terminal", "logs"])
async def test_a_role_that_no_longer_allows_it_ends_the_terminal_and_logs(
    kind, mels_sandbox, member_user, admin_user
):
    client = await database_sync_to_async(client_for)(member_user)
    admin = await database_sync_to_async(client_for)(admin_user)
    ws = await open_socket(client, kind, mels_sandbox["id"])
    live = await open_socket(client, "live list", mels_sandbox["id"])
    url = reverse("team_role", args=[member_user.pk])
    assert (await admin.post(url, {"role": Role.VIEWER})).status_code == 302
    close, _ = await closed_with(ws)
    assert close["code"] == 4403 and "no longer" in close["reason"]
    await still_open(live, 1.2)  # a viewer still sees the list
    await ws.disconnect()
    await live.disconnect()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_password_change_ends_every_socket_of_the_person(kind, mels_sandbox, member_user):
    client = await database_sync_to_async(client_for)(member_user)
    ws = await open_socket(client, kind, mels_sandbox["id"])
    changer = ServedClient()
    assert await changer.alogin(username="mel", password=PASSWORD)
    response = await changer.post(
        reverse("account"),
        {
            "old_password": PASSWORD,
            "new_password1": "n3w-pass-phrase!",
            "new_password2": "n3w-pass-phrase!",
        },
    )
    assert response.status_code == 302
    close, _ = await closed_with(ws)
    assert close["code"] == 4401 and "password" in close["reason"]
    await ws.disconnect()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_session_that_expires_ends_its_sockets(kind, mels_sandbox, member_user):
    client = await database_sync_to_async(client_for)(member_user)
    key = client.cookies["sessionid"].value
    expires = timezone.now() + timedelta(seconds=1.5)
    await database_sync_to_async(Session.objects.filter(session_key=key).update)(
        expire_date=expires
    )
    ws = await open_socket(client, kind, mels_sandbox["id"])
    close, _ = await closed_with(ws, seconds=3.0)
    assert timezone.now() - expires < timedelta(seconds=WITHIN)
    assert close["code"] == 4401 and "expired" in close["reason"]
    await ws.disconnect()


@pytest.mark.parametrize("kind", ["terminal", "logs"])
async def test_losing_the_sandbox_to_another_owner_ends_its_terminal_and_logs(
    kind, daytona_engine, mels_sandbox, member_user
):
    client = await database_sync_to_async(client_for)(member_user)
    ws = await open_socket(client, kind, mels_sandbox["id"])

    def give_away() -> None:
        # Straight in Daytona, as an SDK script would: no event tells anyone.
        with daytona_engine.client() as http:
            labels = {OWNER_LABEL: "max"}
            response = http.put(f"/sandbox/{mels_sandbox['id']}/labels", json={"labels": labels})
            assert response.status_code == 200, response.text

    await asyncio.to_thread(give_away)
    close, took = await closed_with(ws, seconds=WITHIN + 1.0)  # one look a second, plus a call
    assert close["code"] == 4403, close
    assert took < WITHIN + 0.5
    await ws.disconnect()


async def test_a_sandbox_deleted_through_sandbar_ends_its_terminal(
    mels_sandbox, member_user, admin_user
):
    client = await database_sync_to_async(client_for)(member_user)
    admin = await database_sync_to_async(client_for)(admin_user)
    ws = await open_socket(client, "terminal", mels_sandbox["id"])
    url = reverse("sandbox_action", args=[mels_sandbox["id"], "delete"])
    assert (await admin.post(url)).status_code in (200, 302)
    close, _ = await closed_with(ws)
    assert close["code"] in (4404, 4410), close  # told by the trail, or the shell died first
    await ws.disconnect()


async def test_an_account_change_that_takes_nothing_away_leaves_sockets_open(
    mels_sandbox, member_user
):
    client = await database_sync_to_async(client_for)(member_user)
    ws = await open_socket(client, "terminal", mels_sandbox["id"])
    member_user.first_name = "Mel"
    await database_sync_to_async(member_user.save)()
    await database_sync_to_async(ConnectionQuota.objects.create)(user=member_user, quota_cpu=4)
    await still_open(ws)
    await ws.disconnect()
