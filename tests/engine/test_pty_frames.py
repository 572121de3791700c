"""A terminal's output frames: coalesced per tick, an echo after a quiet spell at once,
nothing held back at exit, and an exited terminal's output let go after a while."""

from __future__ import annotations

import asyncio

import pytest

from dashboard.engine import pty as ptys
from tests.engine.test_pty_local import started, wait_exit


async def frames_until_exit(watcher: ptys.Attachment) -> list[bytes]:
    frames = []
    while (frame := await asyncio.wait_for(watcher.next(), 20)) is not None:
        frames.append(frame)
    return frames


async def test_small_writes_within_a_tick_go_out_as_one_frame() -> None:
    # 100 one-byte writes a millisecond or so apart: each its own read off the tty.
    terminal = await started(
        "sh", "-c", "sleep 0.2; for i in $(seq 100); do printf x; sleep 0.001; done; sleep 0.1"
    )
    watcher = terminal.attach()
    loop = asyncio.get_running_loop()
    first = await asyncio.wait_for(watcher.next(), 20)
    assert first is not None
    began = loop.time()
    frames = [first, *await frames_until_exit(watcher)]
    elapsed = loop.time() - began
    assert b"".join(frames) == b"x" * 100
    # At most one frame per tick (and the first at once), however many writes.
    assert len(frames) <= elapsed / ptys.FRAME_SECONDS + 2
    assert len(frames) < 100


async def test_the_first_output_after_a_quiet_spell_is_not_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ptys, "FRAME_SECONDS", 2.0)
    terminal = await started("sh", "-c", "sleep 0.2; printf a; sleep 0.3; printf b; sleep 4")
    watcher = terminal.attach()
    loop = asyncio.get_running_loop()
    assert await asyncio.wait_for(watcher.next(), 20) == b"a"
    seen_a = loop.time()
    assert await asyncio.wait_for(watcher.next(), 20) == b"b"
    # b came 0.3 s after a, inside a's tick: it waited for the tick's end (2 s after a;
    # the margin is for a loaded machine waking this test late for a).
    assert loop.time() - seen_a >= 1.2
    await terminal.kill()


async def test_output_held_for_the_tick_is_sent_before_the_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ptys, "FRAME_SECONDS", 30.0)
    terminal = await started("sh", "-c", "sleep 0.2; printf a; sleep 0.1; printf b")
    watcher = terminal.attach()
    frames = await frames_until_exit(watcher)
    assert b"".join(frames) == b"ab"
    assert watcher.exited == (0, None)
    assert terminal.replay_raw() == b"ab"


async def test_an_exited_terminals_output_is_let_go_after_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ptys, "EXITED_SCROLLBACK_SECONDS", 0.3)
    terminal = await started("sh", "-c", "head -c 100000 /dev/zero | tr '\\0' a")
    assert await wait_exit(terminal) == 0
    assert len(terminal.replay_raw()) == 100000  # a late client still gets a replay
    await asyncio.sleep(0.6)
    assert terminal.replay_raw() == b""
    assert terminal.scrollback_bytes == 0
