"""A terminal's output frames: coalesced per tick, a key's echo after a quiet spell at
once, a program's burst in one frame, nothing held back at exit, and an exited
terminal's output let go after a while."""

from __future__ import annotations

import asyncio
import os

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


async def test_the_echo_of_a_key_after_a_quiet_spell_is_not_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ptys, "FRAME_SECONDS", 2.0)
    terminal = await started("cat")  # the tty echoes what is typed
    watcher = terminal.attach()
    await asyncio.sleep(2.5)  # quiet for over a tick
    loop = asyncio.get_running_loop()
    typed = loop.time()
    await terminal.write(b"a")
    assert await asyncio.wait_for(watcher.next(), 20) == b"a"
    assert loop.time() - typed < 1.0  # not held for the 2 s tick
    await terminal.kill()


async def test_keys_typed_in_quick_succession_each_echo_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ptys, "FRAME_SECONDS", 2.0)
    terminal = await started("cat")
    watcher = terminal.attach()
    loop = asyncio.get_running_loop()
    for key in (b"a", b"b", b"c"):  # each within the tick of the last echo
        typed = loop.time()
        await terminal.write(key)
        assert await asyncio.wait_for(watcher.next(), 20) == key
        assert loop.time() - typed < 1.0
    await terminal.kill()


async def test_a_programs_output_within_a_tick_waits_for_the_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ptys, "FRAME_SECONDS", 2.0)
    terminal = await started("sh", "-c", "sleep 0.2; printf a; sleep 0.3; printf b; sleep 4")
    watcher = terminal.attach()
    loop = asyncio.get_running_loop()
    began = loop.time()
    # a came after a quiet spell and nobody typed: held for a tick, with b, 0.3 s later.
    assert await asyncio.wait_for(watcher.next(), 20) == b"ab"
    assert loop.time() - began >= 1.5
    await terminal.kill()


async def test_a_programs_burst_after_a_quiet_spell_goes_out_as_one_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 16 lines 10 ms apart, each its own write, every 0.6 s: the load bench's program,
    # slowed down (the pause is a read with a timeout on a FIFO nobody writes to).
    monkeypatch.setattr(ptys, "FRAME_SECONDS", 0.3)
    script = (
        "f=$(mktemp -u); mkfifo $f; exec 3<>$f; rm $f; for n in 1 2 3; do sleep 0.6; "
        "for i in $(seq 16); do echo line$n; read -t 0.01 -u 3; done; done"
    )
    reads = 0
    real_read = os.read
    master: list[int | None] = [None]

    def counting_read(fd: int, size: int) -> bytes:
        nonlocal reads
        reads += fd == master[0]
        return real_read(fd, size)

    monkeypatch.setattr(ptys.os, "read", counting_read)
    terminal = await started("bash", "-c", script)
    master[0] = terminal._master
    watcher = terminal.attach()
    frames = await frames_until_exit(watcher)
    assert b"".join(frames) == b"".join(b"line%d\r\n" % n * 16 for n in (1, 2, 3))
    assert len(frames) == 3  # not a frame for a burst's first line and one for the rest
    # A read per burst (and at the end), not one per write: reading a PTY costs ~40 us.
    assert reads <= 8


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
    terminal = await started("sh", "-c", "head -c 50000 /dev/zero | tr '\\0' a")
    assert await wait_exit(terminal) == 0
    assert len(terminal.replay_raw()) == 50000  # a late client still gets a replay
    await asyncio.sleep(0.6)
    assert terminal.replay_raw() == b""
    assert terminal.scrollback_bytes == 0
