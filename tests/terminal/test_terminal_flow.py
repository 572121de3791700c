"""Flow control and large pastes through the terminal consumer."""

import asyncio
import hashlib

import pytest

from dashboard.terminal import consumers
from tests.terminal.conftest import new_session, open_terminal

pytestmark = pytest.mark.django_db(transaction=True)


async def test_output_pauses_above_the_high_watermark_and_resumes_on_ack(
    make_sandbox, member_user
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    term, _ = await open_terminal(member_user, sandbox["id"], new_session(), ack=False)
    await term.until_control("hello")
    await term.keys("yes flood-0123456789abcdef\r")
    # Without acks the consumer stops after one high watermark (plus at most one frame).
    with pytest.raises(AssertionError):
        await term.until(lambda t: len(t.output) > 2 * consumers.HIGH_WATER, seconds=2)
    paused_at = len(term.output)
    assert consumers.HIGH_WATER <= paused_at <= consumers.HIGH_WATER + (64 << 10)
    # Ctrl-C gets through at once, even while output is held back.
    await term.keys(b"\x03")
    await term.keys("echo after-$((6*7))\r")
    # Acknowledge everything: output flows again, starting with a reset and a redraw.
    term.ack = True
    await term.control({"type": "ack", "bytes": paused_at})
    await term.until_output(b"after-42", seconds=20)
    assert term.output[paused_at:].startswith(b"\x1bc")
    await term.ws.disconnect()


async def test_a_one_megabyte_paste_arrives_whole_and_in_order(make_sandbox, member_user) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    term, _ = await open_terminal(member_user, sandbox["id"], new_session())
    await term.until_control("hello")
    # Lines below the tty's 4 KiB canonical limit; every byte numbered so order shows.
    line = b"abcdefghijklmnopqrstuvwxyz" * 40
    payload = b"".join(f"{i:06d}".encode() + line[:1017] + b"\n" for i in range(1024))
    assert len(payload) == 1 << 20
    await term.keys("stty -echo; head -c 1048576 > /tmp/paste; stty echo; sha256sum /tmp/paste\r")
    await asyncio.sleep(0.3)
    for start in range(0, len(payload), 16 << 10):  # as the browser chunks a paste
        await term.keys(payload[start : start + (16 << 10)])
    await term.until_output(hashlib.sha256(payload).hexdigest().encode(), seconds=60)
    await term.ws.disconnect()
