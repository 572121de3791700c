"""The log viewer's consumer: run a command in a session, or pick an earlier one, and follow it.

Protocol: JSON text frames.
  in:  {"type": "run", "command"} · {"type": "follow", "session", "command", "after"}
       · {"type": "stop", "session", "command"} · {"type": "ack"} (one per batch drawn)
       · {"type": "ping"}
  out: {"type": "started", "session", "command", "text"} · {"type": "lines", "first",
       "lines": [[stream, text], ...]} (stream 1 stdout, 2 stderr; `first` is the index
       of the first line, so a reconnecting viewer asks for `after` = lines it has and
       gets neither gaps nor duplicates) · {"type": "end", "exit_code", "stopped"}
       · {"type": "error", "message", "retry"} · {"type": "pong"}
The consumer sends at most WINDOW unacknowledged batches, so a slow page slows the
follow instead of growing memory here or in the browser.

Each command runs in a session of its own, so it neither waits behind a long one of the
same person nor takes others with it when stopped: Daytona's toolbox has no way to
signal a session command, so Stop deletes its session, which kills what it started.
A person's newest KEEP_SESSIONS sessions are kept (the toolbox holds 64 per sandbox).
"""

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from channels.db import database_sync_to_async

from dashboard import daytona
from dashboard.audit.models import Outcome
from dashboard.audit.trail import record
from dashboard.core.websocket import POLICY_VIOLATION, BadFrame, close_for, parse_json_frame
from dashboard.daytona import streams, toolbox
from dashboard.terminal.base import RelayConsumer

log = logging.getLogger(__name__)

BAD_REQUEST = 4400  # also base.NOT_ALLOWED, NOT_FOUND and UNAVAILABLE
NOT_STARTED = 4409

BATCH_LINES = 2000
WINDOW = 8  # batches in flight before the follow waits for the page
MAX_LINE = 64 << 10  # a "line" without a newline is cut here, so memory stays bounded
MAX_COMMAND = 10_000
MAX_CONTROL = 16_384
ID = re.compile(r"^[A-Za-z0-9._:@+-]{1,200}$")
KEEP_SESSIONS = 12


def sessions_prefix(user: Any) -> str:
    return f"sandbar-logs-{user.pk}-"


def session_for(user: Any) -> str:
    """A new session for one command of this person: its id sorts by when it was made."""
    return f"{sessions_prefix(user)}{time.time_ns() // 1000:016x}"


def is_own_session(session: str) -> bool:
    """A session the dashboard made for one command (older ones held many commands)."""
    return re.fullmatch(r"sandbar-logs-\d+-[0-9a-f]{16}", session) is not None


async def lines_of(
    pieces: AsyncIterator[tuple[int, bytes]],
) -> AsyncIterator[list[tuple[int, str]]]:
    """Lists of (stream, line) from (stream, bytes) pieces: each stream's lines kept whole."""
    partial: dict[int, bytes] = {streams.STDOUT: b"", streams.STDERR: b""}
    async for stream, data in pieces:
        buffer = partial.get(stream, b"") + data
        *complete, rest = buffer.split(b"\n")
        found = [(stream, line.decode("utf-8", "replace")) for line in complete]
        while len(rest) > MAX_LINE:
            found.append((stream, rest[:MAX_LINE].decode("utf-8", "replace")))
            rest = rest[MAX_LINE:]
        partial[stream] = rest
        if found:
            yield found
    rests = [(stream, rest.decode("utf-8", "replace")) for stream, rest in partial.items() if rest]
    if rests:
        yield rests


class LogsConsumer(RelayConsumer):
    """Runs commands in a sandbox session and streams their output, resumable by line."""

    # No groups here: without a channel layer each message is one wait, not two.
    channel_layer_alias = None

    follower: asyncio.Task[None] | None = None
    # The (session, command) being stopped: its log's end is the stop, not a failure.
    stopping: tuple[str, str] | None = None

    async def connect(self) -> None:
        self.acked = asyncio.Semaphore(WINDOW)
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close()
            return
        sandbox_id = self.scope["url_route"]["kwargs"]["sandbox_id"]
        denied = "Only the sandbox's owner or an admin may read its logs."
        if not await self._open_sandbox(sandbox_id, denied):
            return
        if self.sandbox.state != "started":
            await self._refuse(NOT_STARTED, f"The sandbox is {self.sandbox.state}; start it first.")
            return
        await self.accept()
        await self._watch_account()

    async def disconnect(self, code: int) -> None:
        await self._release()

    async def _release(self) -> None:
        await self._stop_watching()
        await self._stop()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # A frame that is not a message of this protocol closes the socket (1003, 1007,
        # 1008, 1009); a message with a bad value (an empty command) gets an error.
        try:
            message = parse_json_frame(text_data, MAX_CONTROL)
            kind = message["type"]
            if kind not in ("run", "follow", "stop", "ack", "ping"):
                raise BadFrame(
                    POLICY_VIOLATION, "Unknown message; expected run, follow, stop, ack or ping."
                )
        except BadFrame as bad:
            await close_for(self, bad)
            await self._release()
            return
        if kind == "run":
            await self._run(message.get("command"))
        elif kind == "follow":
            await self._follow_request(message)
        elif kind == "stop":
            await self._stop_command(message)
        elif kind == "ack":
            with contextlib.suppress(ValueError):
                self.acked.release()
        else:
            await self._send({"type": "pong"})

    async def _run(self, command: object) -> None:
        if not isinstance(command, str) or not command.strip():
            await self._error("Type a command to run.")
            return
        if len(command) > MAX_COMMAND or "\x00" in command:
            await self._error(f"Commands are limited to {MAX_COMMAND} characters, without NUL.")
            return
        session = session_for(self.user)
        try:
            await self._prune_sessions()
            await toolbox.create_session(self.sandbox, session)
            started = await toolbox.run_command(self.sandbox, session, command)
        except daytona.DaytonaError as error:
            await self._audit(command, "", Outcome.FAILURE, error.message)
            await self._error(error.message)
            return
        await self._audit(command, started.id, Outcome.SUCCESS)
        await self._send(
            {"type": "started", "session": session, "command": started.id, "text": command}
        )
        await self._start(session, started.id, 0)

    async def _prune_sessions(self) -> None:
        """Delete this person's oldest finished command sessions beyond KEEP_SESSIONS."""
        prefix = sessions_prefix(self.user)
        mine = sorted(
            (s for s in await toolbox.list_sessions(self.sandbox) if s.id.startswith(prefix)),
            key=lambda s: s.id,
        )
        for old in mine[: max(0, len(mine) - KEEP_SESSIONS + 1)]:
            if all(c.exit_code is not None for c in old.commands):
                with contextlib.suppress(daytona.NotFound):
                    await _delete_session(self.sandbox, old.id)

    async def _stop_command(self, message: dict[str, Any]) -> None:
        session, command = message.get("session"), message.get("command")
        if not (isinstance(session, str) and ID.match(session)):
            await self._error("Which session? Its id is missing or malformed.")
            return
        if not (isinstance(command, str) and ID.match(command)):
            await self._error("Which command? Its id is missing or malformed.")
            return
        if not is_own_session(session):
            await self._error(
                "This command shares its session with others (it was not run from this page, "
                "or was run before Stop existed): stopping it here would kill them too. "
                "Stop it from a terminal."
            )
            return
        try:
            found = await toolbox.get_command(self.sandbox, session, command)
        except daytona.NotFound:
            await self._error("That command is not known in this sandbox (any more).")
            return
        except daytona.DaytonaError as error:
            await self._error(error.message)
            return
        if found.exit_code is not None:
            await self._error(f"The command has already finished (exit {found.exit_code}).")
            return
        self.stopping = (session, command)
        try:
            await _delete_session(self.sandbox, session)
        except daytona.NotFound:
            pass  # gone meanwhile: stopped all the same
        except daytona.DaytonaError as error:
            self.stopping = None
            await self._audit_stop(found.command, command, Outcome.FAILURE, error.message)
            await self._error(error.message)
            return
        await self._audit_stop(found.command, command, Outcome.SUCCESS)
        if self.follower is None or self.follower.done():
            await self._send({"type": "end", "exit_code": None, "stopped": True})

    async def _follow_request(self, message: dict[str, Any]) -> None:
        session, command, after = (
            message.get("session"),
            message.get("command"),
            message.get("after", 0),
        )
        if not (isinstance(session, str) and ID.match(session)):
            await self._error("Which session? Its id is missing or malformed.")
            return
        if not (isinstance(command, str) and ID.match(command)):
            await self._error("Which command? Its id is missing or malformed.")
            return
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            await self._error("`after` is the number of lines already shown.")
            return
        await self._start(session, command, after)

    async def _start(self, session: str, command: str, after: int) -> None:
        await self._stop()
        self.acked = asyncio.Semaphore(WINDOW)
        self.follower = asyncio.create_task(self._follow(session, command, after))

    async def _stop(self) -> None:
        task, self.follower = self.follower, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _follow(self, session: str, command: str, after: int) -> None:
        """Stream the command's lines from `after` on, in batches the page acknowledges."""
        index = 0
        batch: list[list[Any]] = []
        first = after

        async def flush() -> None:
            nonlocal batch, first
            if batch:
                await self.acked.acquire()
                await self._send({"type": "lines", "first": first, "lines": batch})
                first += len(batch)
                batch = []

        try:
            pieces = streams.follow_command(self.sandbox, session, command)
            async for found in lines_of(pieces):
                for stream, line in found:
                    index += 1
                    if index <= after:
                        continue  # the page has it already
                    batch.append([stream, line])
                    if len(batch) >= BATCH_LINES:
                        await flush()
                # Each piece is one read from the toolbox: send what it held now, so a
                # line followed by silence is not held back.
                await flush()
            await flush()
            if self.stopping == (session, command):
                await self._send({"type": "end", "exit_code": None, "stopped": True})
                return
            exit_code = None
            with contextlib.suppress(daytona.DaytonaError):
                exit_code = (await toolbox.get_command(self.sandbox, session, command)).exit_code
            await self._send({"type": "end", "exit_code": exit_code, "lines": first})
        except asyncio.CancelledError:
            raise
        except daytona.DaytonaError as error:
            if self.stopping == (session, command):
                # Its session went mid-read: that is the stop, not a failure.
                await self._send({"type": "end", "exit_code": None, "stopped": True})
            elif isinstance(error, daytona.NotFound):
                await self._error("That command is not known in this sandbox (any more).")
            else:
                await self._error(error.message, retry=True)
        except Exception:
            log.exception("log follow failed")
            await self._error("Following the log failed.", retry=True)

    async def _send(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message, ensure_ascii=False))

    async def _error(self, message: str, retry: bool = False) -> None:
        await self._send({"type": "error", "message": message, "retry": retry})

    async def _audit_stop(
        self, command: str, command_id: str, outcome: str, error: str = ""
    ) -> None:
        await self._audit(command, command_id, outcome, error, action="command.stop")

    @database_sync_to_async
    def _audit(
        self,
        command: str,
        command_id: str,
        outcome: str,
        error: str = "",
        action: str = "command.run",
    ) -> None:
        client = self.scope.get("client")
        record(
            self.user,
            action,
            target_kind="sandbox",
            target_id=self.sandbox.id,
            target_name=self.sandbox.name,
            outcome=outcome,
            error=error,
            client_ip=str(client[0]) if client else "",
            detail={"command": command[:2000], "command_id": command_id},
        )


async def _delete_session(sandbox: daytona.Sandbox, session: str) -> None:
    """Delete a command session: its shell and everything it started are killed."""
    await toolbox.call(sandbox, "DELETE", f"/process/session/{quote(session, safe='')}")
