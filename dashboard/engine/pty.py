"""PTY terminals that belong to the engine, not to a WebSocket connection.

A terminal keeps running when its clients go away; any number of clients can attach,
all see the output and all may type. Output is read from the PTY master as fast as the
process writes it and fanned out to a bounded queue per client: a client that falls
too far behind is dropped with 1008 "slow consumer" (as the Daytona daemon does),
never buffered without bound. A bounded ring of recent output lets a re-attaching
client get a replay, either raw or as a clean redraw of the screen (pyte).

Output is coalesced per tick: what a terminal writes within FRAME_SECONDS of its last
frame goes out as one frame at the end of that tick (at most READ_SIZE). The first
output after a keystroke (its echo) goes out at once; other output after a quiet spell
(a program printing a burst of lines) waits one tick with the PTY unwatched, and the
tick reads the whole burst at once. A program that writes many small pieces costs one
frame per tick on every hop and one wake-up of the engine, not one of each per write.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import os
import re
import struct
import termios
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from dashboard.engine.errors import ApiError, BadRequest, Conflict, NotFound

MAX_COLS = 1000  # as the daemon
MAX_ROWS = 1000
READ_SIZE = 32 << 10  # one output frame at most, as the daemon
TTY_CHUNK = 4096  # the most one read of a PTY returns (Linux's n_tty buffer)
# Enough for pyte to redraw a large screen (a 250x70 one drawn in colour is ~40 KiB).
# Daytona's daemon keeps none at all; 256 KiB here was 2/3 of an engine's memory per
# busy terminal (bench/load.py).
SCROLLBACK_BYTES = 64 << 10
# Small outputs (echoed keys, prompts) are kept joined in chunks up to this size: one
# bytes object per read would cost ~40 bytes of overhead per echoed key, 40 times its
# payload, so a typing-only terminal's 64 KiB of scrollback could take ~2.5 MB.
SCROLLBACK_CHUNK = 4 << 10
CLIENT_MAX_FRAMES = 256  # the daemon's per-client queue
CLIENT_MAX_BYTES = 4 << 20
MAX_PTYS = 64  # per sandbox
MAX_EXITED = 32  # exited terminals remembered (for 410 and the exit code) per sandbox
DRAIN_AFTER_EXIT = 0.5  # seconds to read what the process wrote before it died
FRAME_SECONDS = 0.016  # at most one output frame per tick per terminal (a 60 Hz screen)
# An exited terminal's output stays for a late client's replay this long, then goes: 32
# remembered exits per sandbox must not hold their scrollback for ever.
EXITED_SCROLLBACK_SECONDS = 10.0


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc's
    except (AttributeError, OSError):
        return None


_MALLOC_TRIM = _malloc_trim()
_trim_pending = False


def _trim_soon() -> None:
    """Give freed heap pages back to the system a second from now (once for many exits).

    Scrollback is kept in 4 KiB chunks, below glibc's mmap threshold: freed, they stay in
    the heap and the RSS stays where the busiest moment left it, however many terminals
    have gone since. malloc_trim(0) returns every free page, not only the heap's top.
    """
    global _trim_pending
    if _MALLOC_TRIM is None or _trim_pending:
        return
    _trim_pending = True

    def trim() -> None:
        global _trim_pending
        _trim_pending = False
        _MALLOC_TRIM(0)

    asyncio.get_running_loop().call_later(1.0, trim)


class Gone(ApiError):
    """The terminal's process has exited."""

    status = 410


class PtyProcess(Protocol):
    """What a terminal needs of a spawned process (the runtime's ``SandboxProcess``)."""

    pty_master: int | None

    async def wait(self) -> int: ...

    def kill(self) -> None: ...

    def release(self) -> None: ...


# argv, env, cwd -> a process whose controlling terminal is a new PTY.
PtySpawner = Callable[[Sequence[str], Mapping[str, str], str], Awaitable[PtyProcess]]


def check_size(value: object, name: str, maximum: int) -> int:
    """A terminal dimension between 1 and ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise BadRequest(f"{name} must be an integer from 1 to {maximum}")
    return value


class Killable(Protocol):
    """Anything with the runtime process's ``kill``."""

    def kill(self) -> None: ...


async def kill_until_dead(process: Killable, waiter: asyncio.Future[None]) -> None:
    """Kill ``process`` until ``waiter`` (its exit watcher) is done, for at most 5 s.

    A kill right after the spawn can miss: the process enters its exec cgroup, which the
    kill empties, only once its launcher has run. So the kill is repeated until it lands.
    """
    deadline = asyncio.get_running_loop().time() + 5
    while not waiter.done() and asyncio.get_running_loop().time() < deadline:
        process.kill()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(waiter), 0.1)


def exit_reason(code: int) -> str | None:
    """The daemon's words for an exit code."""
    if code == 0:
        return None
    names = {130: "Ctrl+C", 137: "SIGKILL", 143: "SIGTERM"}
    if code in names:
        return names[code]
    return f"signal {code - 128}" if code > 128 else "non-zero exit"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Attachment:
    """One client's bounded view of a terminal's output."""

    def __init__(self) -> None:
        self._frames: deque[bytes] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self.overflowed = False
        self.exited: tuple[int, str | None] | None = None

    def push(self, data: bytes) -> None:
        """Queue output; past the bounds the client is marked as a slow consumer."""
        if self.overflowed:
            return
        if len(self._frames) >= CLIENT_MAX_FRAMES or self._bytes + len(data) > CLIENT_MAX_BYTES:
            self.overflowed = True
            self._frames.clear()
            self._bytes = 0
        else:
            self._frames.append(data)
            self._bytes += len(data)
        self._ready.set()

    def end(self, exit_code: int, reason: str | None) -> None:
        """The process has exited: after the queued output, report it."""
        self.exited = (exit_code, reason)
        self._ready.set()

    async def next(self) -> bytes | None:
        """The next output frame, or None once overflowed or exited (and drained)."""
        while True:
            if self.overflowed:
                return None
            if self._frames:
                data = self._frames.popleft()
                self._bytes -= len(data)
                return data
            if self.exited is not None:
                return None
            self._ready.clear()
            await self._ready.wait()


@dataclass
class Terminal:
    """One PTY session: its process, size and the clients watching it."""

    id: str
    cols: int
    rows: int
    cwd: str
    envs: dict[str, str]
    lazy_start: bool
    created_at: str = field(default_factory=_now)
    process: PtyProcess | None = None
    exit_code: int | None = None
    attachments: set[Attachment] = field(default_factory=set)
    scrollback: deque[bytes] = field(default_factory=deque)
    scrollback_bytes: int = 0
    _master: int | None = None
    _pending: list[bytes] = field(default_factory=list)  # read, not yet sent (this tick)
    _pending_bytes: int = 0
    _last_frame: float = 0.0  # loop time of the last frame sent
    _flush_timer: asyncio.TimerHandle | None = None
    _watching: bool = False  # whether the loop watches the PTY for output
    _typed: bool = False  # input written since the last frame: its echo goes out at once
    _eof: asyncio.Event = field(default_factory=asyncio.Event)
    _waiter: asyncio.Task[None] | None = None
    _write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _start_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def active(self) -> bool:
        """Whether its process is running."""
        return self.process is not None and self.exit_code is None

    @property
    def exit_reason(self) -> str | None:
        """Why it ended, in the daemon's words."""
        return None if self.exit_code is None else exit_reason(self.exit_code)

    def to_json(self) -> dict[str, object]:
        """Daytona's PtySessionInfo (all eight fields are required by the SDK)."""
        return {
            "id": self.id,
            "active": self.active,
            "cols": self.cols,
            "rows": self.rows,
            "createdAt": self.created_at,
            "cwd": self.cwd,
            "envs": self.envs,
            "lazyStart": self.lazy_start,
        }

    # -- process ---------------------------------------------------------------

    async def start(self, spawn: PtySpawner, argv: Sequence[str], env: Mapping[str, str]) -> None:
        """Start the process (once); later calls return at once."""
        async with self._start_lock:
            if self.process is not None or self.exit_code is not None:
                return
            process = await spawn(argv, env, self.cwd)
            master = process.pty_master
            assert master is not None
            os.set_blocking(master, False)
            self._master = master
            self.process = process
            self._set_winsize()
            self._watch()
            self._waiter = asyncio.create_task(self._wait())

    def _set_winsize(self) -> None:
        if self._master is not None:
            size = struct.pack("HHHH", self.rows, self.cols, 0, 0)
            with contextlib.suppress(OSError):
                fcntl.ioctl(self._master, termios.TIOCSWINSZ, size)

    def _watch(self) -> None:
        if self._master is not None and not self._watching:
            asyncio.get_running_loop().add_reader(self._master, self._on_output)
            self._watching = True

    def _unwatch(self) -> None:
        if self._master is not None and self._watching:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._master)
        self._watching = False

    def _read(self, until_short: bool = False) -> bool:
        """Read what the PTY holds into this tick's frame (up to READ_SIZE); True at EOF.
        With ``until_short``, a read that returns less than the tty could give ends it."""
        assert self._master is not None
        # The tty hands out at most TTY_CHUNK per read; gather what is there into one
        # frame so a flood costs one WebSocket frame per 32 KiB rather than per 4 KiB.
        while self._pending_bytes < READ_SIZE:
            try:
                chunk = os.read(self._master, READ_SIZE - self._pending_bytes)
            except BlockingIOError:
                return False
            except OSError:
                return True  # EIO: every slave end is closed
            if not chunk:
                return True
            self._pending.append(chunk)
            self._pending_bytes += len(chunk)
            if until_short and len(chunk) < TTY_CHUNK:
                # The burst is read. Asking again would cost a system call (as dear as a
                # read) to hear so; if more comes, the loop says so. A flood is read until
                # the tty is empty: there, returning to the loop per chunk costs more.
                return False
        return False

    def _on_output(self) -> None:
        if self._master is None:
            return
        loop = asyncio.get_running_loop()
        if (
            self._flush_timer is None
            and not self._typed
            and loop.time() >= self._last_frame + FRAME_SECONDS
        ):
            # Quiet until now, and nobody typed: a program's burst has begun. Wait a tick
            # without being woken for each of its writes, then read it all at once.
            self._unwatch()
            self._flush_timer = loop.call_later(FRAME_SECONDS, self._tick)
            return
        if self._read():
            self._at_eof()
        elif self._pending_bytes >= READ_SIZE or (self._pending and self._typed):
            # A full frame waits for no tick, nor does the echo of a key (typed right
            # after the last echo, it would wait for the tick: a key every 16 ms at most).
            self._flush()
        elif self._pending and self._flush_timer is None:
            due = self._last_frame + FRAME_SECONDS
            if loop.time() < due:
                self._flush_timer = loop.call_at(due, self._flush)  # within a tick
            else:
                self._flush()

    def _tick(self) -> None:
        """The end of a tick spent not watching the PTY: read what came, send it."""
        self._flush_timer = None
        if self._master is None:
            return
        if self._read(until_short=True):
            self._at_eof()
            return
        self._watch()
        self._flush()

    def _at_eof(self) -> None:
        self._unwatch()
        self._flush()
        self._eof.set()

    def _flush(self) -> None:
        """Send what was read this tick to every client, as one frame."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._pending:
            return
        pending = self._pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        self._pending = []
        self._pending_bytes = 0
        self._typed = False
        self._last_frame = asyncio.get_running_loop().time()
        self._remember(data)
        for attachment in list(self.attachments):
            attachment.push(data)
            if attachment.overflowed:
                self.attachments.discard(attachment)

    def _remember(self, data: bytes) -> None:
        # Grows by use, up to SCROLLBACK_BYTES: nothing is allocated ahead of output.
        scrollback = self.scrollback
        if scrollback and len(scrollback[-1]) + len(data) <= SCROLLBACK_CHUNK:
            scrollback[-1] += data
        else:
            scrollback.append(data)
        self.scrollback_bytes += len(data)
        while self.scrollback_bytes - len(scrollback[0]) >= SCROLLBACK_BYTES:
            self.scrollback_bytes -= len(scrollback.popleft())

    async def _wait(self) -> None:
        assert self.process is not None
        code = await self.process.wait()
        if not self._watching and self._flush_timer is not None:
            self._flush_timer.cancel()
            self._tick()  # a tick spent not watching: what the process wrote is read now
        # Background jobs may keep the terminal open; do not wait for them for long.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._eof.wait(), DRAIN_AFTER_EXIT)
        self._finish(code)

    def _finish(self, code: int) -> None:
        if self.exit_code is not None:
            return
        self.exit_code = code
        if self._master is not None and not self._eof.is_set():
            # The drain may end during a tick waited out unwatched: what the tty holds
            # would go with the master, never read.
            self._read()
        self._flush()  # what was read before the exit goes out before the exit report
        self._unwatch()
        self._master = None
        if self.process is not None:
            self.process.release()  # closes the master
        for attachment in self.attachments:
            attachment.end(code, self.exit_reason)
        self.attachments.clear()
        asyncio.get_running_loop().call_later(EXITED_SCROLLBACK_SECONDS, self._forget_output)

    def _forget_output(self) -> None:
        self.scrollback = deque()
        self.scrollback_bytes = 0
        _trim_soon()

    async def write(self, data: bytes) -> None:
        """Send keystrokes; waits (and so slows that client) while the PTY is full."""
        if not data:
            return
        async with self._write_lock:
            view = memoryview(data)
            while view:
                master = self._master
                if master is None or self.exit_code is not None:
                    raise Gone(f"PTY session {self.id} has exited")
                try:
                    written = os.write(master, view)
                except BlockingIOError:
                    await self._writable(master)
                    continue
                except OSError as error:
                    if error.errno == errno.EIO:
                        raise Gone(f"PTY session {self.id} has exited") from None
                    raise
                view = view[written:]
                self._typed = True

    async def _writable(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.add_writer(fd, lambda: ready.done() or ready.set_result(None))
        try:
            # The timeout rechecks whether the process is gone while nobody reads input.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready, 1.0)
        finally:
            loop.remove_writer(fd)

    def resize(self, cols: int, rows: int) -> None:
        """Set the window size (the foreground program gets SIGWINCH)."""
        if self.exit_code is not None:
            raise Gone(f"PTY session {self.id} has exited")
        self.cols, self.rows = cols, rows
        self._set_winsize()

    async def kill(self) -> None:
        """Kill the process tree; clients see exit code 137 (SIGKILL)."""
        if self.process is not None and self.exit_code is None and self._waiter is not None:
            await kill_until_dead(self.process, self._waiter)
        self._finish(137 if self.exit_code is None else self.exit_code)

    # -- clients ---------------------------------------------------------------

    def attach(self) -> Attachment:
        """A new client's queue (already ended if the process has exited)."""
        attachment = Attachment()
        if self.exit_code is not None:
            attachment.end(self.exit_code, self.exit_reason)
        else:
            self.attachments.add(attachment)
        return attachment

    def detach(self, attachment: Attachment) -> None:
        """The client went away; the terminal keeps running."""
        self.attachments.discard(attachment)

    def replay_raw(self) -> bytes:
        """Recent output, at most :data:`SCROLLBACK_BYTES`."""
        return b"".join(self.scrollback)

    def replay_screen(self) -> bytes:
        """A redraw of the current screen, computed from the recent output with pyte."""
        return render_screen(self.replay_raw(), self.cols, self.rows)


def pyte_graphics_names(kind: str) -> list[tuple[int, str]]:
    """pyte's table of SGR colour codes (normal and bright) for foreground or background."""
    from pyte import graphics

    return [
        *getattr(graphics, f"{kind}_ANSI").items(),
        *getattr(graphics, f"{kind}_AIXTERM").items(),
    ]


# Programs such as vim and top draw on the alternate screen; when they exit, a
# terminal shows the main screen again as it was. pyte has no alternate screen,
# so the output is split here and only the screen in use at the end is redrawn.
_ALT_SCREEN = re.compile(rb"\x1b\[\?(?:1049|1047|47)([hl])")
_SGR_NAMES = {name: code for code, name in pyte_graphics_names("FG")}
_SGR_BG_NAMES = {name: code for code, name in pyte_graphics_names("BG")}


def split_screens(raw: bytes) -> tuple[bytes, bytes | None]:
    """The main screen's output, and the alternate screen's if a program is still on it."""
    main: list[bytes] = []
    position, alternate_from = 0, None
    for switch in _ALT_SCREEN.finditer(raw):
        if switch.group(1) == b"h" and alternate_from is None:
            main.append(raw[position : switch.start()])
            alternate_from = switch.end()
        elif switch.group(1) == b"l" and alternate_from is not None:
            alternate_from = None
            position = switch.end()
    if alternate_from is None:
        main.append(raw[position:])
        return b"".join(main), None
    return b"".join(main), raw[alternate_from:]


def _colour(value: str, names: dict[str, int], extended: int) -> str:
    if value == "default":
        return ""
    if value in names:
        return str(names[value])
    try:
        red, green, blue = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    except ValueError:  # a colour pyte reports in a form we do not know: leave it out
        return ""
    return f"{extended};2;{red};{green};{blue}"


def _sgr(char: object) -> str:
    """The SGR sequence that sets a pyte character's colours and attributes."""
    codes = ["0"]
    for flag, code in (
        ("bold", "1"),
        ("italics", "3"),
        ("underscore", "4"),
        ("blink", "5"),
        ("reverse", "7"),
        ("strikethrough", "9"),
    ):
        if getattr(char, flag):
            codes.append(code)
    codes += [
        c for c in (_colour(char.fg, _SGR_NAMES, 38), _colour(char.bg, _SGR_BG_NAMES, 48)) if c
    ]
    return "\x1b[" + ";".join(codes) + "m"


def render_screen(raw: bytes, cols: int, rows: int) -> bytes:
    """Feed recent output through a terminal emulator and return a clean redraw of the
    screen it ends on (text with its colours and attributes, then the cursor), for a
    re-attaching client."""
    import pyte  # only needed when a client asks for a redraw

    class Screen(pyte.Screen):
        def select_graphic_rendition(self, *attrs: int, **flags: object) -> None:
            # `CSI ? Pm m` (private SGR, sent by vim) is not a rendition change.
            if not flags.get("private"):
                super().select_graphic_rendition(*attrs)

    main, alternate = split_screens(raw)
    screen = Screen(cols, rows)
    pyte.ByteStream(screen).feed(alternate if alternate is not None else main)
    default = _sgr(screen.default_char)
    lines = []
    for y in range(rows):
        row, current, text = screen.buffer[y], default, []
        for x in range(cols):
            char = row[x]
            style = _sgr(char)
            if style != current:
                text.append(style)
                current = style
            text.append(char.data)
        line = "".join(text).rstrip()
        lines.append(line + ("\x1b[0m" if current != default else ""))
    body = "\r\n".join(lines).rstrip("\r\n")
    cursor = f"\x1b[0m\x1b[{screen.cursor.y + 1};{screen.cursor.x + 1}H"
    prefix = "\x1b[?1049h" if alternate is not None else ""
    return (prefix + "\x1b[H\x1b[2J" + body + cursor).encode()


class PtyManager:
    """The terminals of one sandbox."""

    def __init__(self, spawn: PtySpawner) -> None:
        self._spawn = spawn
        self.terminals: dict[str, Terminal] = {}

    def create(
        self,
        pty_id: str,
        *,
        cols: int = 80,
        rows: int = 24,
        cwd: str,
        envs: dict[str, str],
        lazy_start: bool = False,
    ) -> Terminal:
        """Register a terminal (its process is started by :meth:`start`)."""
        existing = self.terminals.get(pty_id)
        if existing is not None:
            if existing.exit_code is None:
                raise Conflict(f"PTY session {pty_id} already exists")
            del self.terminals[pty_id]  # an exited one may be replaced
        if sum(t.exit_code is None for t in self.terminals.values()) >= MAX_PTYS:
            raise Conflict(f"a sandbox may have at most {MAX_PTYS} PTY sessions")
        terminal = Terminal(pty_id, cols, rows, cwd, envs, lazy_start)
        self.terminals[pty_id] = terminal
        self._forget_old()
        return terminal

    def _forget_old(self) -> None:
        exited = [t for t in self.terminals.values() if t.exit_code is not None]
        for terminal in exited[: max(0, len(exited) - MAX_EXITED)]:
            del self.terminals[terminal.id]

    def get(self, pty_id: str) -> Terminal:
        """The terminal, or 404."""
        terminal = self.terminals.get(pty_id)
        if terminal is None:
            raise NotFound(f"PTY session {pty_id} not found")
        return terminal

    async def start(self, terminal: Terminal, argv: Sequence[str], env: Mapping[str, str]) -> None:
        """Start the terminal's process; forget the terminal if that fails."""
        try:
            await terminal.start(self._spawn, argv, env)
        except BaseException:
            if self.terminals.get(terminal.id) is terminal and terminal.process is None:
                del self.terminals[terminal.id]
            raise

    async def delete(self, pty_id: str) -> None:
        """Kill the terminal's process and forget it."""
        terminal = self.get(pty_id)
        await terminal.kill()
        if self.terminals.get(pty_id) is terminal:
            del self.terminals[pty_id]

    async def close(self) -> None:
        """Kill every terminal (the sandbox is going away)."""
        for pty_id in list(self.terminals):
            await self.delete(pty_id)
