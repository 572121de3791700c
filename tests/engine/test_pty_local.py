"""Terminals on a plain local PTY (no sandbox): scrollback, slow clients, exit, redraw."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence

import pytest

from dashboard.engine import pty as ptys


class LocalPty:
    """The runtime's SandboxProcess interface over a local process on a new PTY."""

    def __init__(self, process: asyncio.subprocess.Process, master: int) -> None:
        self.process = process
        self.pty_master: int | None = master

    async def wait(self) -> int:
        code = await self.process.wait()
        return 128 - code if code < 0 else code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def release(self) -> None:
        if self.pty_master is not None:
            os.close(self.pty_master)
            self.pty_master = None


async def spawn(argv: Sequence[str], env: Mapping[str, str], cwd: str) -> LocalPty:
    master, slave = os.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            "setsid", "--ctty", *argv, stdin=slave, stdout=slave, stderr=slave,
            env=dict(env), cwd=cwd, start_new_session=False,
        )  # fmt: skip
    finally:
        os.close(slave)
    return LocalPty(process, master)


async def started(*argv: str) -> ptys.Terminal:
    manager = ptys.PtyManager(spawn)
    terminal = manager.create("t", cwd="/tmp", envs={})
    await manager.start(terminal, argv, {"PATH": os.environ["PATH"], "TERM": "xterm"})
    return terminal


async def wait_exit(terminal: ptys.Terminal) -> int:
    for _ in range(500):
        if terminal.exit_code is not None:
            return terminal.exit_code
        await asyncio.sleep(0.01)
    raise AssertionError("the terminal did not exit")


async def test_scrollback_keeps_only_the_most_recent_output() -> None:
    terminal = await started("sh", "-c", "head -c 2000000 /dev/zero | tr '\\0' a; printf END")
    assert await wait_exit(terminal) == 0
    recent = terminal.replay_raw()
    assert recent.endswith(b"END")
    assert ptys.SCROLLBACK_BYTES <= len(recent) < ptys.SCROLLBACK_BYTES + ptys.READ_SIZE


async def test_a_client_that_does_not_read_is_marked_slow_and_dropped_while_others_stay() -> None:
    terminal = await started("sh", "-c", "sleep 0.2; head -c 20000000 /dev/zero; sleep 0.2")
    slow = terminal.attach()
    fast = terminal.attach()
    received = 0
    while (frame := await fast.next()) is not None:
        received += len(frame)
    assert slow.overflowed
    assert slow not in terminal.attachments
    assert await slow.next() is None
    assert received >= 19_000_000  # the tty turns \n into \r\n; /dev/zero has none
    assert fast.exited == (0, None)


async def test_exit_codes_and_reasons_follow_the_daemon() -> None:
    terminal = await started("sh", "-c", "exit 3")
    assert await wait_exit(terminal) == 3
    assert terminal.exit_reason == "non-zero exit"
    with pytest.raises(ptys.Gone):
        terminal.resize(100, 30)
    with pytest.raises(ptys.Gone):
        await terminal.write(b"late")
    assert [ptys.exit_reason(c) for c in (0, 130, 137, 143, 129)] == [
        None, "Ctrl+C", "SIGKILL", "SIGTERM", "signal 1",
    ]  # fmt: skip


async def test_kill_ends_the_terminal_with_137() -> None:
    terminal = await started("sleep", "60")
    watcher = terminal.attach()
    await terminal.kill()
    assert (terminal.exit_code, terminal.active) == (137, False)
    assert await watcher.next() is None
    assert watcher.exited == (137, "SIGKILL")


async def test_input_reaches_the_process_and_resize_reaches_stty() -> None:
    terminal = await started("sh", "-c", "read line; stty size; echo got-$line")
    watcher = terminal.attach()
    terminal.resize(123, 45)
    await terminal.write(b"hello\n")
    output = b""
    while (frame := await watcher.next()) is not None:
        output += frame
    assert b"45 123" in output
    assert b"got-hello" in output


def test_the_screen_redraw_shows_what_a_terminal_would() -> None:
    raw = b"old text\r\n\x1b[2J\x1b[Hfresh\r\nprompt$ "
    redraw = ptys.render_screen(raw, 20, 5)
    assert redraw.startswith(b"\x1b[H\x1b[2J")
    assert b"old text" not in redraw
    assert b"fresh\r\nprompt$" in redraw
    assert redraw.endswith(b"\x1b[2;9H")  # the cursor after "prompt$ "


@pytest.mark.parametrize("value", [0, -1, 1001, True, "80", None])
def test_sizes_out_of_range_are_refused(value: object) -> None:
    with pytest.raises(ptys.BadRequest):
        ptys.check_size(value, "cols", ptys.MAX_COLS)


def test_the_redraw_keeps_colours_and_survives_vims_private_sgr() -> None:
    raw = b"\x1b[?4m\x1b[1;31mred\x1b[0m plain \x1b[38;2;1;2;3mrgb"
    redraw = ptys.render_screen(raw, 30, 2)
    assert b"\x1b[0;1;31mred\x1b[0m plain " in redraw
    assert b"\x1b[0;38;2;1;2;3mrgb" in redraw


def test_a_program_on_the_alternate_screen_is_redrawn_there() -> None:
    shell = b"$ ls\r\nnotes.txt\r\n$ vim\r\n"
    on_vim = shell + b"\x1b[?1049h\x1b[H\x1b[2J~ vim screen"
    redraw = ptys.render_screen(on_vim, 20, 4)
    assert redraw.startswith(b"\x1b[?1049h")
    assert b"~ vim screen" in redraw
    assert b"notes.txt" not in redraw


def test_after_a_full_screen_program_exits_the_shell_screen_comes_back() -> None:
    raw = b"$ ls\r\nnotes.txt\r\n$ vim\x1b[?1049h\x1b[H\x1b[2J~ vim screen\x1b[?1049l\r\n$ "
    redraw = ptys.render_screen(raw, 20, 4)
    assert not redraw.startswith(b"\x1b[?1049h")
    assert b"notes.txt" in redraw
    assert b"vim screen" not in redraw
