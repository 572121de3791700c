"""Shells people can tell apart and that go away: names, titles, idle time, "this tab",
closing when the tab closes (after a grace period a reload comes back within), and
"close all mine"."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from dashboard.terminal import views
from dashboard.terminal.consumers import pty_id_for
from dashboard.terminal.models import Shell
from tests.conftest import client_for
from tests.terminal.conftest import new_session, open_terminal

pytestmark = pytest.mark.django_db(transaction=True)


async def listing(user, sandbox_id: str, this: str = "") -> str:
    client = await sync_to_async(client_for)(user)
    url = reverse("terminal_shells", args=[sandbox_id])
    response = await sync_to_async(client.get)(url, {"this": this} if this else {})
    assert response.status_code == 200
    return response.content.decode()


async def ended(session: str) -> bool:
    shell = await Shell.objects.aget(pty_id=pty_id_for(session))
    return shell.ended_at is not None


async def test_shells_are_named_titled_by_their_program_and_marked_for_their_tab(
    make_sandbox, member_user
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    first, second = new_session(), new_session()
    one, _ = await open_terminal(member_user, sandbox["id"], first)
    await one.until_control("hello")
    two, _ = await open_terminal(member_user, sandbox["id"], second)
    await two.until_control("hello")
    await two.control({"type": "title", "title": "vim notes.txt"})
    await two.control({"type": "ping"})
    await two.until_control("pong")  # the title is saved before the pong is sent
    html = await listing(member_user, sandbox["id"], this=first)
    assert "Shell 1" in html and "Shell 2" in html and "vim notes.txt" in html
    assert html.count("this tab</span>") == 1
    row = html[html.index(f'data-session="{first}"') :].split("</tr>")[0]
    assert "data-this-tab" in row and "active now" in row
    await one.ws.disconnect()
    await two.ws.disconnect()


async def test_idle_time_counts_from_the_last_keystroke(make_sandbox, member_user) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    session = new_session()
    term, _ = await open_terminal(member_user, sandbox["id"], session)
    await term.until_control("hello")
    await term.keys("echo hi\r")
    await term.until_output(b"hi")
    await term.ws.disconnect()
    shell = await Shell.objects.aget(pty_id=pty_id_for(session))
    assert shell.last_input_at is not None and shell.last_input_at >= shell.created_at
    # Ten minutes without a key: the list says so.
    await Shell.objects.filter(pk=shell.pk).aupdate(
        last_input_at=shell.last_input_at - views.timedelta(minutes=10)
    )
    html = await listing(member_user, sandbox["id"])
    assert "10 min" in html


async def test_a_shell_whose_tab_left_is_closed_after_the_grace_period(
    make_sandbox, member_user, monkeypatch
) -> None:
    monkeypatch.setattr(views, "LEAVE_GRACE_SECONDS", 0.5)
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    session = new_session()
    term, _ = await open_terminal(member_user, sandbox["id"], session)
    await term.until_control("hello")
    await term.ws.disconnect()
    client = await sync_to_async(client_for)(member_user)
    url = reverse("terminal_leave", args=[sandbox["id"], session])
    assert (await sync_to_async(client.post)(url)).status_code == 204
    for _ in range(50):
        if await ended(session):
            break
        await asyncio.sleep(0.1)
    assert await ended(session)
    assert session not in await listing(member_user, sandbox["id"])


async def test_a_reload_within_the_grace_period_keeps_the_shell(
    make_sandbox, member_user, monkeypatch
) -> None:
    monkeypatch.setattr(views, "LEAVE_GRACE_SECONDS", 1.0)
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    session = new_session()
    term, _ = await open_terminal(member_user, sandbox["id"], session)
    await term.until_control("hello")
    await term.ws.disconnect()
    client = await sync_to_async(client_for)(member_user)
    await sync_to_async(client.post)(reverse("terminal_leave", args=[sandbox["id"], session]))
    again, _ = await open_terminal(member_user, sandbox["id"], session)  # the reload
    assert (await again.until_control("hello"))["reattached"] is True
    await asyncio.sleep(1.5)
    assert not await ended(session)
    await again.keys("echo still-$((6*7))\r")
    await again.until_output(b"still-42")
    await again.ws.disconnect()


async def test_only_the_owner_can_let_a_shell_go(make_sandbox, member_user, admin_user) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    session = new_session()
    term, _ = await open_terminal(member_user, sandbox["id"], session)
    await term.until_control("hello")
    admin = await sync_to_async(client_for)(admin_user)
    url = reverse("terminal_leave", args=[sandbox["id"], session])
    assert (await sync_to_async(admin.post)(url)).status_code == 404
    assert (await sync_to_async(admin.get)(url)).status_code == 405
    await term.ws.disconnect()


async def test_close_all_mine_closes_my_shells_and_leaves_others(
    make_sandbox, member_user, admin_user
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    mine = [new_session(), new_session()]
    theirs = new_session()
    terms = []
    for user, session in ((member_user, mine[0]), (member_user, mine[1]), (admin_user, theirs)):
        term, _ = await open_terminal(user, sandbox["id"], session)
        await term.until_control("hello")
        terms.append(term)
    client = await sync_to_async(client_for)(member_user)
    url = reverse("terminal_close_mine", args=[sandbox["id"]])
    html = (await sync_to_async(client.post)(url)).content.decode()
    assert mine[0] not in html and mine[1] not in html and theirs in html
    exit = await terms[0].until_control("exit")
    assert exit["type"] == "exit"
    for term in terms:
        await term.ws.disconnect()
