"""Toolbox sessions: a long-lived shell per session whose commands share cwd and env.

Like the Daytona daemon, each session is one shell process and every command is run
*in* it, so ``cd`` and ``export`` carry over. The engine hands the shell three pipes
besides its own stdin (the command channel): the commands' stdout, stderr and stdin.
After each command the shell prints a sentinel carrying a per-command random nonce and
the exit status to both output pipes; the engine cuts the streams there. Output goes
straight to a log file on disk (see :mod:`dashboard.engine.logs`), never into memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import shlex
import shutil
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dashboard.engine.errors import BadRequest, Conflict, NotFound
from dashboard.engine.logs import CommandLog, LogBudget
from dashboard.engine.pty import kill_until_dead

MAX_SESSIONS = 64  # per sandbox
MAX_COMMANDS = 1000  # kept per session; the oldest finished ones (and logs) are dropped
MAX_COMMAND_BYTES = 256 << 10
MAX_INPUT_BYTES = 1 << 20
MAX_ID = 256
DRAIN_AFTER_EXIT = 0.3  # seconds to keep reading output once the shell itself has died
SENTINEL_START = b"\x1e\x1fSANDBAR-"
SENTINEL_END = b"\x1e"
SHELL = ("/bin/bash", "--noprofile", "--norc")


class ShellProcess(Protocol):
    """What the session needs of a spawned shell (the runtime's ``SandboxProcess``)."""

    @property
    def stdin(self) -> asyncio.StreamWriter | None: ...

    @property
    def stdout(self) -> asyncio.StreamReader | None: ...

    async def wait(self) -> int: ...

    def kill(self) -> None: ...

    def release(self) -> None: ...


# argv, fds the child must inherit (same numbers) -> a started shell with a stdin pipe.
Spawner = Callable[[Sequence[str], Sequence[int]], Awaitable[ShellProcess]]


def check_id(value: object, what: str) -> str:
    """A client-chosen id: a non-empty string without control characters or "/" (it
    could never be addressed in a URL path)."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID:
        raise BadRequest(f"{what} must be a string of 1 to {MAX_ID} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value) or "/" in value:
        raise BadRequest(f"{what} must not contain control characters or /")
    return value


@dataclass
class Command:
    """One command run in a session, with its log on disk."""

    id: str
    command: str
    log: CommandLog
    nonce: bytes
    out_done: bool = False
    err_done: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def exit_code(self) -> int | None:
        """The exit code once the command has finished."""
        return self.log.exit_code

    def to_json(self) -> dict[str, object]:
        """Daytona's Command: ``exitCode`` only once it has finished."""
        body: dict[str, object] = {"id": self.id, "command": self.command}
        if self.log.exit_code is not None:
            body["exitCode"] = self.log.exit_code
        return body


def _held_suffix(buffer: bytes, pattern: bytes) -> int:
    """How many trailing bytes of ``buffer`` could be the start of ``pattern``."""
    index = buffer.find(pattern[:1], max(0, len(buffer) - len(pattern) + 1))
    while index >= 0:
        if pattern.startswith(buffer[index:]):
            return len(buffer) - index
        index = buffer.find(pattern[:1], index + 1)
    return 0


@dataclass
class _ShellRun:
    """One shell process of a session and the commands queued to it."""

    process: ShellProcess
    input: asyncio.StreamWriter
    fds: tuple[int, int, int]  # the commands' stdout, stderr and stdin, as the shell sees them
    pending: deque[Command] = field(default_factory=deque)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    dead: bool = False


class Session:
    """A named shell in one sandbox and the commands it has run."""

    def __init__(
        self, session_id: str, directory: Path, spawn: Spawner, budget: LogBudget | None = None
    ) -> None:
        self.id = session_id
        self.directory = directory
        self.budget = budget or LogBudget()
        self._spawn = spawn
        self.commands: dict[str, Command] = {}
        self._run: _ShellRun | None = None
        self._start_lock = asyncio.Lock()
        self.deleted = False

    def to_json(self) -> dict[str, object]:
        """Daytona's Session: ``sessionId`` and its commands."""
        return {"sessionId": self.id, "commands": [c.to_json() for c in self.commands.values()]}

    # -- the shell -------------------------------------------------------------

    async def _ensure_shell(self) -> _ShellRun:
        async with self._start_lock:
            if self._run is not None:
                return self._run
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
            child_fds = (out_w, err_w, in_r)
            try:
                process = await self._spawn(SHELL, child_fds)
            except BaseException:
                for fd in (out_r, out_w, err_r, err_w, in_r, in_w):
                    os.close(fd)
                raise
            for fd in child_fds:
                os.close(fd)
            loop = asyncio.get_running_loop()
            readers = []
            for fd in (out_r, err_r):
                reader = asyncio.StreamReader(limit=1 << 16, loop=loop)
                await loop.connect_read_pipe(
                    lambda r=reader: asyncio.StreamReaderProtocol(r), os.fdopen(fd, "rb", 0)
                )
                readers.append(reader)
            transport, protocol = await loop.connect_write_pipe(
                asyncio.streams.FlowControlMixin, os.fdopen(in_w, "wb", 0)
            )
            # The shell keeps the pipes at the numbers they had here; every command gets
            # them as its 0/1/2 and does not inherit the originals.
            writer = asyncio.StreamWriter(transport, protocol, None, loop)
            run = _ShellRun(process, writer, child_fds)
            run.tasks = [
                asyncio.create_task(self._pump(run, readers[0], 1)),
                asyncio.create_task(self._pump(run, readers[1], 2)),
                asyncio.create_task(self._discard(process)),
                asyncio.create_task(self._watch(run)),
            ]
            self._run = run
            return run

    async def _discard(self, process: ShellProcess) -> None:
        # The shell's own stdout/stderr: nothing should arrive, but it must not fill up.
        if process.stdout is not None:
            while await process.stdout.read(1 << 16):
                pass

    async def _pump(self, run: _ShellRun, reader: asyncio.StreamReader, stream: int) -> None:
        held = b""
        while chunk := await reader.read(1 << 16):
            held = self._route(run, held + chunk, stream)
        if held:
            self._route(run, held, stream, final=True)

    @staticmethod
    def _current(run: _ShellRun, stream: int) -> Command | None:
        for command in run.pending:
            if not (command.out_done if stream == 1 else command.err_done):
                return command
        return None

    def _route(self, run: _ShellRun, data: bytes, stream: int, *, final: bool = False) -> bytes:
        """Write ``data`` to the current command's log up to its sentinel; return what to
        hold back because it may be the start of a sentinel."""
        while data:
            command = self._current(run, stream)
            if command is None:
                return b""  # output of a background job after its command ended
            pattern = SENTINEL_START + command.nonce + b":"
            start = data.find(pattern)
            if start < 0:
                keep = 0 if final else _held_suffix(data, pattern)
                command.log.write(stream, data[: len(data) - keep])
                return data[len(data) - keep :]
            end = data.find(SENTINEL_END, start + len(pattern))
            if end < 0 or end - start > len(pattern) + 12:
                if end < 0 and not final:
                    command.log.write(stream, data[:start])
                    return data[start:]
                command.log.write(stream, data[: start + 1])
                data = data[start + 1 :]
                continue
            command.log.write(stream, data[:start])
            status = data[start + len(pattern) : end]
            if stream == 1:
                command.out_done = True
            else:
                command.err_done = True
            if command.out_done and command.err_done:
                self._finish(run, command, int(status) if status.isdigit() else 1)
            data = data[end + 1 :]
        return b""

    @staticmethod
    def _finish(run: _ShellRun | None, command: Command, exit_code: int) -> None:
        if command.log.finished:
            return
        command.out_done = command.err_done = True
        command.log.finish(exit_code)
        command.done.set()
        if run is not None:
            with contextlib.suppress(ValueError):
                run.pending.remove(command)

    async def _watch(self, run: _ShellRun) -> None:
        code = await run.process.wait()
        if self._run is run:
            self._run = None  # the next command starts a fresh shell
        # Let the pumps read what the shell wrote before dying; background jobs may keep
        # the pipes open, so do not wait for end-of-file.
        pumps = [t for t in run.tasks[:2] if not t.done()]
        if pumps:
            await asyncio.wait(pumps, timeout=DRAIN_AFTER_EXIT)
        for task in run.tasks[:3]:
            task.cancel()
        run.input.close()
        run.process.release()
        run.dead = True
        # The command that was running (e.g. it called ``exit``) ends with the shell's
        # status; the ones queued behind it never ran.
        for index, command in enumerate(list(run.pending)):
            self._finish(run, command, code if index == 0 else 137)

    # -- commands --------------------------------------------------------------

    async def execute(self, command_text: str) -> Command:
        """Queue ``command_text`` in the session's shell and return at once."""
        if "\x00" in command_text:
            raise BadRequest("command must not contain NUL characters")
        if len(command_text.encode()) > MAX_COMMAND_BYTES:
            raise BadRequest(f"command is longer than {MAX_COMMAND_BYTES} bytes")
        run = await self._ensure_shell()
        command_id = str(uuid.uuid4())
        log = CommandLog(self.directory / command_id, self.budget)
        log.open(command_text)
        command = Command(command_id, command_text, log, secrets.token_hex(16).encode())
        self.commands[command_id] = command
        run.pending.append(command)
        self._trim()
        nonce = command.nonce.decode()
        out, err, inp = run.fds
        mark = f"printf '\\036\\037SANDBAR-{nonce}:%d\\036' $__sandbar_status"
        # eval keeps cd/export in the session's shell; the newline before "}" ends a
        # trailing comment; the group's redirections give the command 0/1/2 of its own.
        script = (
            f"{{ eval {shlex.quote(command_text)}\n}} <&{inp} >&{out} 2>&{err} "
            f"{out}>&- {err}>&- {inp}<&-; __sandbar_status=$?; {mark} >&{out}; {mark} >&{err}\n"
        )
        stdin = run.process.stdin
        try:
            if stdin is None or run.dead:
                raise ConnectionError("the session's shell has exited")
            stdin.write(script.encode())
            await stdin.drain()
        except (ConnectionError, RuntimeError):
            self._finish(run, command, 127)
        if run.dead:
            # The shell died while this was being queued; nothing will ever run it.
            self._finish(run, command, 127)
        return command

    def _trim(self) -> None:
        while len(self.commands) > MAX_COMMANDS:
            oldest = next(iter(self.commands.values()))
            if not oldest.log.finished:
                return
            del self.commands[oldest.id]
            oldest.log.remove()

    def get(self, command_id: str) -> Command:
        """The command, or 404."""
        command = self.commands.get(command_id)
        if command is None:
            raise NotFound(f"command {command_id} not found in session {self.id}")
        return command

    async def send_input(self, command_id: str, data: str) -> None:
        """Write ``data`` to the running command's stdin."""
        command = self.get(command_id)
        run = self._run
        if command.log.finished or run is None or run.dead:
            raise Conflict(f"command {command_id} is not running")
        if self._current(run, 1) is not command:
            raise Conflict(f"command {command_id} has not started yet")
        raw = data.encode()
        if len(raw) > MAX_INPUT_BYTES:
            raise BadRequest(f"input is longer than {MAX_INPUT_BYTES} bytes")
        try:
            run.input.write(raw)
            await asyncio.wait_for(run.input.drain(), 10)
        except (ConnectionError, RuntimeError, TimeoutError) as error:
            raise Conflict(f"command {command_id} is not reading its input") from error

    async def close(self) -> None:
        """Kill the shell and everything it started; followers see the logs end."""
        self.deleted = True
        run = self._run
        if run is not None:
            await kill_until_dead(run.process, run.tasks[3])
        for command in self.commands.values():
            self._finish(run, command, 137)
            command.log.remove()
        shutil.rmtree(self.directory, ignore_errors=True)


class SessionManager:
    """The sessions of one sandbox."""

    def __init__(self, directory: Path, spawn: Spawner, budget: LogBudget | None = None) -> None:
        self.directory = directory
        self._spawn = spawn
        self.budget = budget or LogBudget()
        self.sessions: dict[str, Session] = {}

    def create(self, session_id: str) -> Session:
        """Register a new session; its shell starts with its first command."""
        check_id(session_id, "sessionId")
        if session_id in self.sessions:
            raise Conflict(f"session {session_id} already exists")
        if len(self.sessions) >= MAX_SESSIONS:
            raise Conflict(f"a sandbox may have at most {MAX_SESSIONS} sessions")
        # Hash the client's id into a directory name: it may hold any character.
        name = hashlib.sha256(session_id.encode()).hexdigest()[:32]
        session = Session(session_id, self.directory / name, self._spawn, self.budget)
        self.sessions[session_id] = session
        return session

    def get(self, session_id: str) -> Session:
        """The session, or 404."""
        session = self.sessions.get(session_id)
        if session is None:
            raise NotFound(f"session {session_id} not found")
        return session

    async def delete(self, session_id: str) -> None:
        """Kill the session's shell and drop its logs."""
        session = self.get(session_id)
        del self.sessions[session_id]
        await session.close()

    async def close(self) -> None:
        """Delete every session (the sandbox is going away)."""
        for session_id in list(self.sessions):
            await self.delete(session_id)
