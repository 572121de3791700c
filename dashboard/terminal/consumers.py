"""The web terminal: one browser WebSocket relayed to one toolbox PTY.

Protocol (browser side):
- binary frames both ways are terminal bytes (keys in, output out);
- text frames are small JSON control messages:
  in:  {"type": "resize", "cols", "rows"} · {"type": "ack", "bytes"} · {"type": "ping"}
  out: {"type": "hello", ...} · {"type": "exit", "code", "reason"} · {"type": "error",
       "message"} · {"type": "ping"} · {"type": "pong"}
- close codes 4000-4999 are ours (see the constants); the browser retries only on
  codes that say "try again" (RETRY_CODES) and on network drops.

Flow control: the browser acknowledges the bytes it has drawn. Above HIGH_WATER
unacknowledged bytes the consumer stops sending output; below LOW_WATER it resumes
with a fresh attach that resets the terminal and redraws the screen, so the browser
never chews through a backlog of a flood it cannot show anyway. Meanwhile the pump
keeps draining the toolbox socket and drops what it reads: Daytona closes a PTY
reader that falls 256 frames behind (1008 "slow consumer"), and keystrokes sent on a
connection it has given up on are lost. So memory stays bounded on every leg, and
input (Ctrl-C) never waits behind output.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.utils import timezone

from dashboard import daytona
from dashboard.accounts.models import Role
from dashboard.audit.models import Outcome
from dashboard.audit.trail import record
from dashboard.core import cluster
from dashboard.core.websocket import (
    POLICY_VIOLATION,
    TOO_BIG,
    BadFrame,
    close_for,
    parse_json_frame,
)
from dashboard.daytona import toolbox
from dashboard.daytona.streams import PtyClosed, PtyExit, PtyStream
from dashboard.terminal.base import NOT_ALLOWED, NOT_FOUND, UNAVAILABLE, RelayConsumer
from dashboard.terminal.models import Shell, next_number, prune_shells

log = logging.getLogger(__name__)

BAD_REQUEST = 4400
NOT_STARTED = 4409
EXITED = 4410
UPSTREAM_LOST = 4502
RETRY_CODES = (UPSTREAM_LOST, UNAVAILABLE)

HIGH_WATER = 2 << 20  # per terminal: what may sit in buffers towards a slow browser
LOW_WATER = 512 << 10
PING_SECONDS = 20.0
CONTROL_MAX = 4096
INPUT_MAX = 64 << 10  # the toolbox closes a PTY connection on a larger input frame
REATTACH_DELAYS = (0.0, 0.5, 2.0)
SETTLE_SECONDS = 0.5
RESET = b"\x1bc"  # RIS: a clean terminal before a redraw, so no old junk survives
SESSION_ID = r"[A-Za-z0-9_-]{8,64}"
# Output frames already queued from the toolbox go out as one, up to this size: a flood
# costs one browser frame per 64 KiB instead of one per toolbox read.
COALESCE = 64 << 10
TITLE_MAX = 120

# Connections open on each PTY in this process: a shell whose tab left is closed after a
# grace period only if nobody is attached (a reload, or another tab, keeps it)...
attached: Counter[str] = Counter()
# ...here or in another worker (counted in the shared cache; nothing without Redis).
tabs = cluster.Tally("terminal-tabs")


def pty_id_for(session: str) -> str:
    """The toolbox PTY id of a browser session id (prefixed so ours are recognisable)."""
    return f"sandbar-{session}"


def _client_ip(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _size(query: dict[str, list[str]], key: str, default: int) -> int:
    try:
        value = int(query.get(key, [default])[0])
    except (TypeError, ValueError):
        return default
    return value if 1 <= value <= toolbox.MAX_PTY_SIZE else default


class TerminalConsumer(RelayConsumer):
    """Relays a browser terminal to a toolbox PTY, with reattach, flow control and audit."""

    # No groups here: without a channel layer each message is one wait, not two.
    channel_layer_alias = None

    upstream: PtyStream | None = None
    opened: float | None = None

    async def connect(self) -> None:
        self.pump: asyncio.Task[None] | None = None
        self.keepalive: asyncio.Task[None] | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()
        self.window = asyncio.Event()
        self.window.set()
        self.unacked = 0
        self.skipped = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.readonly = False
        self.told_readonly = False
        self.typed_at: float | None = None  # wall time of the last keystroke not yet saved
        self.counted = False
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close()  # before accept: the handshake itself is refused
            return
        kwargs = self.scope["url_route"]["kwargs"]
        self.session = kwargs["session"]
        self.pty_id = pty_id_for(self.session)
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        cols, rows = _size(query, "cols", 80), _size(query, "rows", 24)
        denied = "Only the sandbox's owner or an admin may open a shell."
        if not await self._open_sandbox(kwargs["sandbox_id"], denied):
            return
        if self.sandbox.state != "started":
            message = f"The sandbox is {self.sandbox.state}; start it to use the terminal."
            await self._refuse(NOT_STARTED, message)
            return
        shell = await self._shell()
        if shell is not None and shell.sandbox_id != self.sandbox.id:
            await self._refuse(NOT_FOUND, "No such shell in this sandbox.")
            return
        if shell is not None and shell.owner_id != self.user.pk:
            if self.user.role != Role.ADMIN:
                await self._audit("terminal.open", Outcome.DENIED, "someone else's shell")
                await self._refuse(NOT_ALLOWED, "This shell belongs to someone else.")
                return
            # An admin may watch anyone's shell, never type into it.
            self.readonly = True
        if shell is not None and shell.ended_at is not None:
            await self._accept_and_exit(PtyExit(shell.exit_code, "the shell has ended"))
            return
        reattached = shell is not None
        try:
            if shell is None:
                await toolbox.create_pty(self.sandbox, self.pty_id, cols=cols, rows=rows)
                shell = await self._new_shell()
            # A redraw for a fresh shell too: its first prompt came before we attached.
            self.upstream = await PtyStream.open(self.sandbox, self.pty_id, replay="screen")
        except daytona.NotFound:
            await self._end_shell(None)
            await self._accept_and_exit(PtyExit(None, "the shell is gone"))
            return
        except daytona.Conflict:
            await self._refuse(NOT_ALLOWED, "That terminal id is taken; open a new shell.")
            return
        except daytona.DaytonaError as error:
            await self._refuse(UNAVAILABLE, error.message)
            return
        await self.accept()
        self.opened = time.monotonic()
        attached[self.pty_id] += 1
        self.counted = True
        await tabs.add(self.pty_id, 1)
        if reattached and not self.readonly:
            await self._came_back()
        await self._audit("terminal.open", Outcome.SUCCESS)
        await self._send_json(
            {
                "type": "hello",
                "session": self.session,
                "readonly": self.readonly,
                "reattached": reattached,
                "owner": await self._owner_name(shell),
                "high": HIGH_WATER,
            }
        )
        if reattached:
            await self._send_output(RESET)
        if self.upstream.exit is not None:
            await self._shell_exited(self.upstream.exit)
            return
        self.pump = asyncio.create_task(self._pump(), name=f"terminal-pump-{self.session}")
        self._watch_redraw(self.upstream)
        self.keepalive = asyncio.create_task(
            self._keepalive(), name=f"terminal-ping-{self.session}"
        )
        await self._watch_account()

    async def disconnect(self, code: int) -> None:
        await self._cleanup()

    async def _release(self) -> None:
        await self._cleanup()

    async def _cleanup(self) -> None:
        if getattr(self, "counted", False):
            self.counted = False
            attached[self.pty_id] -= 1
            if attached[self.pty_id] <= 0:
                del attached[self.pty_id]
            await tabs.add(self.pty_id, -1)
        await self._stop_watching()
        tasks = (
            getattr(self, "pump", None),
            getattr(self, "keepalive", None),
            getattr(self, "watcher", None),
        )
        for task in tasks:
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        for task in tasks:
            if task is not None and task is not asyncio.current_task():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.pump = self.keepalive = self.watcher = None
        if self.upstream is not None:
            await self.upstream.close()
            self.upstream = None
        await self._save_typed()
        if self.opened is not None:
            seconds = round(time.monotonic() - self.opened, 1)
            self.opened = None
            await self._audit("terminal.close", Outcome.SUCCESS, seconds=seconds)

    # -- browser -> shell ---------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if bytes_data is not None:
            await self._input(bytes_data)
        elif text_data is not None:
            await self._control(text_data)

    async def _input(self, data: bytes) -> None:
        if len(data) > INPUT_MAX:
            # The toolbox would drop the connection over it (and the keys with it).
            await close_for(
                self, BadFrame(TOO_BIG, f"Input frames are limited to {INPUT_MAX} bytes.")
            )
            await self._cleanup()
            return
        if self.readonly:
            if not self.told_readonly:
                self.told_readonly = True
                await self._error("You are watching someone else's shell: typing is off.")
            return
        for _ in range(2):
            stream = self.upstream
            if stream is None:
                return
            if stream.replay == "screen" and not stream.settled.is_set():
                # Keys typed right after an attach wait (briefly) for the redraw: a
                # connection the toolbox drops while redrawing would swallow them.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stream.settled.wait(), SETTLE_SECONDS)
                if stream is not self.upstream or stream.closed:
                    await self._reattach(stream)
                    continue
            try:
                await stream.send(data)
            except PtyClosed:
                if not await self._reattach(stream):
                    return
                continue
            self.bytes_in += len(data)
            self.typed_at = time.time()
            return

    async def _control(self, text: str) -> None:
        # A frame outside the protocol closes the socket (1007, 1008, 1009: the page never
        # sends one); a message with a bad value (a resize too large) gets an error.
        try:
            message = parse_json_frame(text, CONTROL_MAX)
            if message["type"] not in ("ack", "resize", "ping", "pong", "title"):
                raise BadFrame(
                    POLICY_VIOLATION,
                    "Unknown control message; expected resize, ack, ping or title.",
                )
        except BadFrame as bad:
            await close_for(self, bad)
            await self._cleanup()
            return
        kind = message["type"]
        if kind == "ack":
            count = message.get("bytes")
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
                self.unacked = max(0, self.unacked - count)
                if self.unacked <= LOW_WATER and not self.window.is_set():
                    await self._resume()
            else:
                await self._error("An ack carries a byte count.")
        elif kind == "resize":
            await self._resize(message.get("cols"), message.get("rows"))
        elif kind == "ping":
            await self._send_json({"type": "pong"})
        elif kind == "title":
            title = message.get("title")
            if not isinstance(title, str):
                await self._error("A title is a string.")
            elif not self.readonly:
                await self._set_title(title.replace("\x00", "").strip()[:TITLE_MAX])

    async def _resize(self, cols: object, rows: object) -> None:
        if self.readonly:
            return  # a watcher's window must not reshape the owner's terminal
        try:
            cols, rows = toolbox.check_pty_size(cols, rows)
            await toolbox.resize_pty(self.sandbox, self.pty_id, cols, rows)  # type: ignore[arg-type]
        except daytona.BadRequest as error:
            await self._error(error.message)
        except daytona.DaytonaError as error:
            # A resize racing the shell's exit: the pump reports the exit itself.
            log.info("terminal resize failed: %s", error.message)

    # -- shell -> browser ---------------------------------------------------------------

    async def _pump(self) -> None:
        """Read the toolbox PTY and forward what the browser has room for; the one loop here."""
        try:
            while True:
                stream = self.upstream
                if stream is None:
                    return
                try:
                    data = await stream.recv()
                except StopAsyncIteration:
                    await self._shell_exited(stream.exit or PtyExit(None))
                    return
                except PtyClosed:
                    if not await self._reattach(stream):
                        return
                    continue
                if stream.pending and len(data) < COALESCE:
                    data = await self._gather(stream, data)
                if stream is not self.upstream:
                    continue  # read from a connection just replaced by a redraw: stale
                if self.window.is_set():
                    await self._send_output(data)
                else:
                    # Behind by a high watermark: drop it; the browser gets a redraw instead.
                    self.skipped += len(data)
        except asyncio.CancelledError:
            raise
        except OSError:
            # ASGI servers raise an OSError subclass (uvicorn's ClientDisconnected) on a
            # send to a browser that already left: typically a tab closed as its shell
            # exits. Nobody is left to tell; the disconnect handler cleans up.
            log.debug("terminal browser left before the pump's last send")
        except Exception:
            log.exception("terminal pump failed")
            await self.close(code=UPSTREAM_LOST)

    @staticmethod
    async def _gather(stream: PtyStream, data: bytes) -> bytes:
        """`data` and the output frames already queued after it, up to COALESCE bytes."""
        parts = [data]
        size = len(data)
        while size < COALESCE and stream.pending:
            try:
                more = await stream.recv()
            except (StopAsyncIteration, PtyClosed):
                break  # the next recv() reports the end again, after this output
            parts.append(more)
            size += len(more)
        return b"".join(parts)

    async def _resume(self) -> None:
        """The browser caught up: if output was dropped meanwhile, redraw the screen."""
        if self.skipped and self.upstream is not None:
            # Still paused while reattaching, so nothing stale slips in before the reset.
            await self._reattach(self.upstream)
            self.skipped = 0
        self.window.set()

    async def _send_output(self, data: bytes) -> None:
        self.bytes_out += len(data)
        self.unacked += len(data)
        if self.unacked >= HIGH_WATER:
            self.window.clear()
        await self.send(bytes_data=data)

    async def _reattach(self, old: PtyStream) -> bool:
        """Replace a toolbox connection (dropped, or stale after a pause) with a fresh one that
        redraws the screen; False when the browser has been told to go."""
        async with self.lock:
            if self.upstream is not old:
                return self.upstream is not None
            await old.close()
            for delay in REATTACH_DELAYS:
                await asyncio.sleep(delay)
                # A redraw that broke the connection before any output (a toolbox that
                # cannot render this screen) is not asked for again: attach plainly.
                broken_replay = old.replay == "screen" and old.received == 0
                replay = "none" if broken_replay else "screen"
                try:
                    stream = await PtyStream.open(self.sandbox, self.pty_id, replay=replay)
                except daytona.NotFound:
                    self.upstream = None
                    await self._shell_exited(PtyExit(None, "the shell is gone"))
                    return False
                except daytona.DaytonaError as error:
                    log.info("terminal reattach failed: %s", error.message)
                    continue
                await self._send_output(RESET)
                # Only now may the pump read it: its first frame is the redraw.
                self.upstream = stream
                if replay == "none":
                    await self._nudge_redraw()
                else:
                    self._watch_redraw(stream)
                return True
            self.upstream = None
            await self._error("Lost the connection to the sandbox's terminal.")
            await self.close(code=UPSTREAM_LOST)
            return False

    def _watch_redraw(self, stream: PtyStream) -> None:
        """If the toolbox sends no redraw soon after an attach (Daytona's daemon does not
        know `replay`), nudge the program into repainting."""

        async def watch() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stream.settled.wait(), SETTLE_SECONDS)
            if not stream.settled.is_set() and stream is self.upstream:
                await self._nudge_redraw()

        if self.watcher is not None:
            self.watcher.cancel()
        self.watcher = asyncio.create_task(watch(), name=f"terminal-redraw-{self.session}")

    async def _nudge_redraw(self) -> None:
        """Without a redraw from the toolbox, make the program redraw itself.

        A size change is a SIGWINCH, on which full-screen programs (vim, top, less)
        repaint everything and shells their prompt; the size ends as it was.
        """
        try:
            info = await toolbox.get_pty(self.sandbox, self.pty_id)
            other = info.rows - 1 if info.rows > 1 else info.rows + 1
            await toolbox.resize_pty(self.sandbox, self.pty_id, info.cols, other)
            await asyncio.sleep(0.05)  # two quick signals can merge into one
            await toolbox.resize_pty(self.sandbox, self.pty_id, info.cols, info.rows)
        except daytona.DaytonaError as error:
            log.info("terminal redraw nudge failed: %s", error.message)

    async def _shell_exited(self, exit: PtyExit) -> None:
        await self._end_shell(exit.code)
        await self._send_json({"type": "exit", "code": exit.code, "reason": exit.reason})
        await self.close(code=EXITED)

    async def _keepalive(self) -> None:
        # Proxies drop idle WebSockets after about 60 s; the ASGI server pings too.
        while True:
            await asyncio.sleep(PING_SECONDS)
            await self._send_json({"type": "ping"})
            await self._save_typed()

    # -- helpers --------------------------------------------------------------------------

    async def _send_json(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message))

    async def _error(self, message: str) -> None:
        await self._send_json({"type": "error", "message": message})

    async def _not_allowed(self) -> None:
        await self._audit("terminal.open", Outcome.DENIED, "not allowed")

    async def _accept_and_exit(self, exit: PtyExit) -> None:
        await self.accept()
        await self._send_json({"type": "exit", "code": exit.code, "reason": exit.reason})
        await self.close(code=EXITED)

    @database_sync_to_async
    def _shell(self) -> Shell | None:
        return Shell.objects.filter(pty_id=self.pty_id).first()

    @database_sync_to_async
    def _new_shell(self) -> Shell:
        prune_shells(self.sandbox.id)
        return Shell.objects.create(
            pty_id=self.pty_id,
            sandbox_id=self.sandbox.id,
            owner=self.user,
            number=next_number(self.sandbox.id),
        )

    @database_sync_to_async
    def _came_back(self) -> None:
        """The owner's tab is back: a close pending since it left is called off."""
        Shell.objects.filter(pty_id=self.pty_id).update(left_at=None)

    @database_sync_to_async
    def _set_title(self, title: str) -> None:
        Shell.objects.filter(pty_id=self.pty_id).update(title=title)

    async def _save_typed(self) -> None:
        """Record the last keystroke for "idle for", a few times a minute rather than per key."""
        typed, self.typed_at = getattr(self, "typed_at", None), None
        if typed is not None:
            await self._typed(datetime.fromtimestamp(typed, UTC))

    @database_sync_to_async
    def _typed(self, when: datetime) -> None:
        Shell.objects.filter(pty_id=self.pty_id).update(last_input_at=when)

    @database_sync_to_async
    def _owner_name(self, shell: Shell) -> str:
        return shell.owner.get_username()

    @database_sync_to_async
    def _end_shell(self, code: int | None) -> None:
        Shell.objects.filter(pty_id=self.pty_id, ended_at__isnull=True).update(
            ended_at=timezone.now(), exit_code=code
        )

    @database_sync_to_async
    def _audit(
        self, action: str, outcome: str, error: str = "", seconds: float | None = None
    ) -> None:
        detail: dict[str, Any] = {"session": self.session, "readonly": self.readonly}
        if action == "terminal.close":
            detail.update(bytes_in=self.bytes_in, bytes_out=self.bytes_out, seconds=seconds)
            # One entry says when, how long and how much: no keystrokes, only counts.
            opened = timezone.now() - timedelta(seconds=seconds or 0)
            detail["opened_at"] = opened.isoformat(timespec="seconds")
        agent = dict(self.scope.get("headers") or ()).get(b"user-agent", b"")
        record(
            self.user,
            action,
            target_kind="sandbox",
            target_id=self.sandbox.id,
            target_name=self.sandbox.name,
            outcome=outcome,
            error=error,
            client_ip=_client_ip(self.scope),
            user_agent=agent.decode("latin-1"),
            detail=detail,
        )
