"""The terminal consumer against the real ASGI app and the embedded engine."""

import asyncio
import re

import pytest

from tests.terminal.conftest import new_session, open_terminal

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_echoes_what_the_owner_types(make_sandbox, member_user) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    term, connected = await open_terminal(member_user, sandbox["id"], new_session())
    assert connected
    hello = await term.until_control("hello")
    assert hello["readonly"] is False and hello["reattached"] is False
    await term.keys("echo hel''lo-$((6*7))\r")
    await term.until_output(b"hello-42")
    await term.ws.disconnect()


async def test_a_resize_reaches_the_shell_and_a_bad_one_is_refused_with_a_message(
    make_sandbox, member_user
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    term, _ = await open_terminal(member_user, sandbox["id"], new_session())
    await term.until_control("hello")
    await term.control({"type": "resize", "cols": 123, "rows": 37})
    await term.keys("stty size\r")
    await term.until_output(b"37 123")
    for cols in (0, 100_000, "wide", None):
        await term.control({"type": "resize", "cols": cols, "rows": 10})
    await term.until(lambda t: sum(c["type"] == "error" for c in t.controls) >= 4)
    assert (
        "from 1 to 1000" in term.controls[-1]["message"]
        or "whole number" in (term.controls[-1]["message"])
    )
    # A bad value in a well-formed message gets a message, and the terminal lives on.
    await term.ws.send_to(text_data='{"type": "ack", "bytes": "x"}')
    await term.until(lambda t: sum(c["type"] == "error" for c in t.controls) >= 5)
    await term.keys("echo still-$((1+1))\r")
    await term.until_output(b"still-2")
    await term.ws.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"text_data": "not json"}, 1007),
        ({"text_data": "[1, 2]"}, 1008),
        ({"text_data": '{"type": "nope"}'}, 1008),
        ({"text_data": "x" * 100_000}, 1009),
        ({"bytes_data": b"k" * (65 << 10)}, 1009),
    ],
)
async def test_a_frame_outside_the_protocol_closes_with_its_code(
    make_sandbox, member_user, frame, code
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    term, _ = await open_terminal(member_user, sandbox["id"], new_session())
    await term.until_control("hello")
    await term.ws.send_to(**frame)
    assert await term.until_closed() == code
    await term.ws.disconnect()


async def test_the_exit_code_is_reported_when_the_shell_ends(make_sandbox, member_user) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    session = new_session()
    term, _ = await open_terminal(member_user, sandbox["id"], session)
    await term.until_control("hello")
    await term.keys("exit 3\r")
    exit_message = await term.until_control("exit")
    assert exit_message["code"] == 3
    assert await term.until_closed() == 4410
    # The same session id now only says that the shell has ended.
    again, connected = await open_terminal(member_user, sandbox["id"], session)
    assert connected
    assert (await again.until_control("exit"))["code"] == 3
    assert await again.until_closed() == 4410


async def test_a_reconnect_finds_the_same_shell_with_a_clean_redraw(
    make_sandbox, member_user
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    session = new_session()
    term, _ = await open_terminal(member_user, sandbox["id"], session)
    await term.until_control("hello")
    await term.keys("export MARK=kept-$((40+2)); echo pid=$$.\r")
    await term.until(lambda t: re.search(rb"pid=\d+\.", t.output) is not None)
    pid = re.search(rb"pid=(\d+)\.", term.output).group(1)
    await term.ws.disconnect()

    again, connected = await open_terminal(member_user, sandbox["id"], session)
    assert connected
    hello = await again.until_control("hello")
    assert hello["reattached"] is True
    # Reset first, then the screen as it was (a redraw, not a byte soup).
    await again.until_output(b"pid=" + pid)
    assert again.output.startswith(b"\x1bc")
    await again.keys("echo $MARK pid=$$\r")
    await again.until_output(b"kept-42 pid=" + pid)
    await again.ws.disconnect()


async def test_an_admin_watches_a_members_shell_but_cannot_type(
    make_sandbox, member_user, admin_user
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    session = new_session()
    owner, _ = await open_terminal(member_user, sandbox["id"], session)
    await owner.until_control("hello")
    watcher, connected = await open_terminal(admin_user, sandbox["id"], session)
    assert connected
    hello = await watcher.until_control("hello")
    assert hello["readonly"] is True and hello["owner"] == "mel"
    await watcher.keys("echo typed-by-$((0+0))admin\r")
    error = await watcher.until_control("error")
    assert "watching" in error["message"]
    await owner.keys("echo owner-$((2+3))\r")
    await owner.until_output(b"owner-5")
    await watcher.until_output(b"owner-5")
    assert b"typed-by" not in owner.output
    await watcher.ws.disconnect()
    await owner.ws.disconnect()


async def test_a_member_cannot_open_a_terminal_in_another_members_sandbox(
    make_sandbox, other_member, viewer_user
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    for person in (other_member, viewer_user):
        term, connected = await open_terminal(person, sandbox["id"], new_session())
        assert connected  # accepted only to say why
        assert "owner or an admin" in (await term.until_control("error"))["message"]
        assert await term.until_closed() == 4403


async def test_a_member_cannot_attach_to_another_members_shell(
    make_sandbox, member_user, other_member, admin_user
) -> None:
    # The admin's shell in mel's sandbox: mel may not take it over by its id.
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    session = new_session()
    admins, _ = await open_terminal(admin_user, sandbox["id"], session)
    await admins.until_control("hello")
    term, _ = await open_terminal(member_user, sandbox["id"], session)
    assert "someone else" in (await term.until_control("error"))["message"]
    assert await term.until_closed() == 4403
    await admins.ws.disconnect()


async def test_anonymous_is_refused(make_sandbox) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    _, connected = await open_terminal(None, sandbox["id"], new_session())
    assert not connected


async def test_a_stopped_or_missing_sandbox_says_so(make_sandbox, member_user, daytona_engine):
    term, _ = await open_terminal(member_user, "no-such-sandbox", new_session())
    assert await term.until_closed() == 4404
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    with daytona_engine.client() as http:
        assert http.post(f"/sandbox/{sandbox['id']}/stop").status_code == 200
    term, _ = await open_terminal(member_user, sandbox["id"], new_session())
    assert "start it" in (await term.until_control("error"))["message"]
    assert await term.until_closed() == 4409


async def test_every_session_is_audited_with_the_bytes_each_way(make_sandbox, member_user) -> None:
    from dashboard.audit.models import AuditEntry

    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    term, _ = await open_terminal(member_user, sandbox["id"], new_session())
    await term.until_control("hello")
    await term.keys("echo audited-$((1+1))\r")
    await term.until_output(b"audited-2")
    await term.ws.disconnect()
    opened = await AuditEntry.objects.filter(action="terminal.open").afirst()
    closed = await AuditEntry.objects.filter(action="terminal.close").afirst()
    assert opened.actor_name == "mel" and opened.target_id == sandbox["id"]
    assert closed.detail["bytes_in"] == len("echo audited-$((1+1))\r")
    assert closed.detail["bytes_out"] >= len("audited-2")
    assert closed.detail["seconds"] >= 0


async def test_the_sandbox_stopping_under_an_open_terminal_ends_it_with_a_message(
    make_sandbox, member_user, daytona_engine
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    term, _ = await open_terminal(member_user, sandbox["id"], new_session())
    await term.until_control("hello")

    def stop() -> None:
        with daytona_engine.client() as http:
            assert http.post(f"/sandbox/{sandbox['id']}/stop").status_code == 200

    await asyncio.to_thread(stop)
    code = await term.until_closed(seconds=20)
    assert code in (4410, 4502)
    assert any(c["type"] in ("exit", "error") for c in term.controls)


async def test_a_full_screen_program_comes_back_clean_after_a_reconnect(
    make_sandbox, member_user
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    session = new_session()
    term, _ = await open_terminal(member_user, sandbox["id"], session, cols=80, rows=24)
    await term.until_control("hello")
    await term.keys("vim -u NONE -N /tmp/notes.txt\r")
    await term.until(lambda t: t.output.count(b"~") >= 20)  # vim's empty buffer is up
    await term.keys("i")
    await term.until_output(b"-- INSERT --")
    await term.keys("hello-from-vim\x1b")
    await term.until_output(b"hello-from-vim")  # drawn by vim (it turned the tty's echo off)
    await term.ws.disconnect()

    again, _ = await open_terminal(member_user, sandbox["id"], session, cols=80, rows=24)
    await again.until_control("hello")
    # A reset, then vim's screen again: the toolbox's redraw, or vim's own on SIGWINCH
    # when the toolbox cannot redraw it. No shell prompt or typed bytes replayed.
    await again.until_output(b"-- INSERT --")
    await again.until(lambda t: t.output.count(b"~") >= 20)
    assert again.output.startswith(b"\x1bc")
    assert b"bash-" not in again.output and b"vim -u NONE" not in again.output
    await again.keys("\x1b:wq\r")
    await again.until_output(b"written")
    await again.until(lambda t: t.output.rstrip().endswith(b"$"))
    await again.keys("cat /tmp/notes.txt; echo done-$((1+1))\r")
    await again.until_output(b"done-2")
    assert b"hello-from-vim\r\n" in again.output
    await again.ws.disconnect()


async def test_a_screen_the_toolbox_cannot_redraw_still_reattaches(make_sandbox, member_user):
    # vim sends CSI ? 4 m; the engine's redraw (pyte) fails on it and drops the socket.
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    session = new_session()
    term, _ = await open_terminal(member_user, sandbox["id"], session)
    await term.until_control("hello")
    await term.keys("printf '\\033[?4m'; echo odd-$((2*2))\r")
    await term.until_output(b"odd-4")
    await term.ws.disconnect()
    again, _ = await open_terminal(member_user, sandbox["id"], session)
    assert (await again.until_control("hello"))["reattached"] is True
    await again.keys("echo back-$((3*3))\r")
    await again.until_output(b"back-9")
    await again.ws.disconnect()


def test_the_relay_consumers_use_channels_own_loop_and_send() -> None:
    # Channels' loop runs the consumer and its send goes through the session wrappers: a
    # consumer that re-implements the one or unwraps the other depends on how Channels
    # works inside, and breaks silently when that changes.
    import inspect

    from channels.generic.websocket import AsyncWebsocketConsumer

    from dashboard.terminal.base import RelayConsumer
    from dashboard.terminal.consumers import TerminalConsumer
    from dashboard.terminal.logs import LogsConsumer

    assert issubclass(RelayConsumer, AsyncWebsocketConsumer)
    for consumer in (RelayConsumer, TerminalConsumer, LogsConsumer):
        source = inspect.getsource(consumer)
        assert "real_send" not in source and "base_send" not in source, consumer
        assert consumer.__call__ is RelayConsumer.__call__, consumer
        assert consumer.dispatch is RelayConsumer.dispatch, consumer
    assert "super().__call__(scope, receive, send)" in inspect.getsource(RelayConsumer.__call__)
    # Only browser frames skip Channels' dispatch; everything else goes through it.
    assert "await super().dispatch(message)" in inspect.getsource(RelayConsumer.dispatch)
