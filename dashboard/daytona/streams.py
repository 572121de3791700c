"""Toolbox streams: the PTY WebSocket, followed command logs and file downloads.

Streams live on the caller's event loop (a consumer's, a streaming view's), not on
the shared client's private loop: a WebSocket is one long conversation, not a
pooled request. Every stream carries the API key in headers, never in a URL.
"""

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from dashboard.daytona.client import (
    Conflict,
    DaytonaError,
    NotFound,
    Unavailable,
    _error_for,
    auth_header,
    request,
)
from dashboard.daytona.models import Sandbox
from dashboard.daytona.toolbox import auth_headers, toolbox_base

EXIT_CONTROL = "X-Daytona-Pty-Exit-Control"
HANDSHAKE_SECONDS = 10.0
PING_SECONDS = 20.0  # well under the 60 s idle timeout of common proxies
INPUT_FRAME = 32 << 10  # the daemon takes at most 64 KiB per input frame
# Frames the client library holds before it stops reading the socket: with 32 KiB
# output frames that bounds what one terminal buffers here to about half a MiB.
RECEIVE_QUEUE = 16
STDOUT = 1
STDERR = 2


def _ws_url(base: str) -> str:
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :]
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :]
    return base


def _upgrade_error(error: Exception, what: str) -> DaytonaError:
    if isinstance(error, InvalidStatus):
        status = error.response.status_code
        try:
            message = json.loads(error.response.body or b"{}").get("message") or ""
        except (ValueError, AttributeError):
            message = ""
        message = str(message)[:300] or f"{what} refused ({status})."
        if status == 404:
            return NotFound(message)
        if status in (409, 410):
            return Conflict(message, status)
        if status >= 500:
            return Unavailable(message, status)
        return DaytonaError(message, status)
    return Unavailable(f"{what}: the sandbox cannot be reached ({type(error).__name__}).")


@dataclass(frozen=True)
class PtyExit:
    """The shell ended: its exit code (None if unknown) and Daytona's reason."""

    code: int | None
    reason: str = ""


class PtyClosed(Exception):
    """The PTY stream closed without the shell exiting (slow consumer, network, restart)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(reason or f"closed ({code})")
        self.code = code
        self.reason = reason

    @property
    def slow_consumer(self) -> bool:
        """Daytona dropped us for reading too slowly; reattaching is the remedy."""
        return self.code == 1008


class PtyStream:
    """One attachment to a toolbox PTY: raw bytes both ways, exit reported once."""

    def __init__(self, connection: ClientConnection) -> None:
        self._ws = connection
        self.exit: PtyExit | None = None
        self._detached = False
        self.replay = "none"
        self.received = 0  # output frames so far: 0 when it broke at once
        # Set by the first output or the end: the toolbox is (or is not) serving us.
        self.settled = asyncio.Event()
        # The client library's queue of received frames, looked up once (see `pending`).
        self._frames = getattr(getattr(connection, "recv_messages", None), "frames", None)

    @classmethod
    async def open(cls, sandbox: Sandbox, pty_id: str, *, replay: str = "none") -> "PtyStream":
        """Attach to a running PTY; `replay="screen"` asks for a clean redraw first."""
        url = (
            _ws_url(await toolbox_base(sandbox)) + f"/process/pty/{quote(pty_id, safe='')}/connect"
        )
        if replay != "none":
            # The embedded engine redraws the screen; Daytona ignores what it does not know.
            url += "?" + urlencode({"replay": replay})
        try:
            ws = await connect(
                url,
                additional_headers=auth_headers(),
                subprotocols=[EXIT_CONTROL],  # type: ignore[list-item]
                open_timeout=HANDSHAKE_SECONDS,
                ping_interval=PING_SECONDS,
                ping_timeout=PING_SECONDS,
                max_size=1 << 20,
                max_queue=RECEIVE_QUEUE,
                compression=None,
            )
        except (InvalidStatus, WebSocketException, OSError, TimeoutError) as error:
            raise _upgrade_error(error, "The terminal") from None
        stream = cls(ws)
        stream.replay = replay
        try:
            await asyncio.wait_for(stream._handshake(), HANDSHAKE_SECONDS)
        except BaseException:
            await stream.close()
            raise
        return stream

    async def _handshake(self) -> None:
        while True:
            try:
                message = await self._ws.recv()
            except ConnectionClosed as closed:
                raise Unavailable(f"The terminal closed while connecting ({closed}).") from None
            control = _control(message)
            if control is None:
                continue  # output before "connected" does not happen; be lenient
            status = control.get("status")
            if status == "connected":
                return
            if status == "error":
                raise Unavailable(str(control.get("error") or "The terminal refused us.")[:300])
            if status == "exited":
                self.exit = _exit_from(control)
                return

    async def recv(self) -> bytes:
        """The next output bytes; raises PtyExit-carrying StopAsyncIteration or PtyClosed."""
        while True:
            if self.exit is not None:
                raise StopAsyncIteration
            try:
                message = await self._ws.recv()
            except ConnectionClosed as closed:
                self.settled.set()
                if self._detached:  # our own close echoed back, not the shell's exit
                    raise PtyClosed(None, "detached") from None
                self.exit = self.exit or _exit_from_close(closed)
                if self.exit is not None:
                    raise StopAsyncIteration from None
                code = closed.rcvd.code if closed.rcvd else None
                reason = closed.rcvd.reason if closed.rcvd else ""
                raise PtyClosed(code, reason) from None
            if isinstance(message, bytes):
                self.received += 1
                self.settled.set()
                return message
            control = _control(message)
            if control is None:
                self.received += 1
                self.settled.set()
                return message.encode()
            if control.get("status") == "exited":
                self.exit = _exit_from(control)

    async def send(self, data: bytes) -> None:
        """Send keystrokes, split into frames the daemon accepts."""
        try:
            if 0 < len(data) <= INPUT_FRAME:  # a keystroke: no slicing, no loop
                await self._ws.send(data)
                return
            for start in range(0, len(data), INPUT_FRAME):
                await self._ws.send(data[start : start + INPUT_FRAME])
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            raise PtyClosed(code, "input could not be delivered") from None

    @property
    def pending(self) -> int:
        """Frames already received and queued here: reading them now does not wait."""
        frames = self._frames
        try:
            return len(frames) if frames is not None else 0
        except TypeError:
            return 0

    @property
    def closed(self) -> bool:
        """Whether the connection has ended (for any reason)."""
        return self._ws.close_code is not None

    async def close(self) -> None:
        """Detach; the shell keeps running."""
        self._detached = True
        with contextlib.suppress(TimeoutError, WebSocketException, OSError):
            await asyncio.wait_for(self._ws.close(), 2)


def _control(message: str | bytes) -> dict[str, Any] | None:
    if isinstance(message, bytes):
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("type") == "control":
        return data
    return None


def _exit_from(data: dict[str, Any]) -> PtyExit:
    code = data.get("exitCode")
    reason = data.get("exitReason") or data.get("error") or ""
    return PtyExit(
        code if isinstance(code, int) and not isinstance(code, bool) else None, str(reason)
    )


def _exit_from_close(closed: ConnectionClosed) -> PtyExit | None:
    frame = closed.rcvd
    if frame is None:
        return None
    try:
        data = json.loads(frame.reason) if frame.reason else None
    except ValueError:
        data = None
    if isinstance(data, dict) and "exitCode" in data:
        return _exit_from(data)
    if frame.code == 1000:
        return PtyExit(0)
    return None


# -- command logs -------------------------------------------------------------------


_MARKER = re.compile(rb"(\x01\x01\x01|\x02\x02\x02)")


class Demux:
    """Splits Daytona's marked log bytes into (stream, bytes), markers split across frames too."""

    MARKERS = {b"\x01\x01\x01": STDOUT, b"\x02\x02\x02": STDERR}

    def __init__(self) -> None:
        self.stream = STDOUT
        self._held = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The pieces of output in `data`, each tagged with its stream."""
        data = self._held + data
        self._held = b""
        parts = _MARKER.split(data)
        # The text after the last whole marker may end in the start of the next one.
        last = parts[-1]
        tail = 0
        while tail < 2 and tail < len(last) and last[-1 - tail] == last[-1] and last[-1] in (1, 2):
            tail += 1
        if tail:
            parts[-1], self._held = last[:-tail], last[-tail:]
        out: list[tuple[int, bytes]] = []
        # Split in C, not byte by byte in Python: logs run to millions of lines.
        for position, part in enumerate(parts):
            if position % 2:
                self.stream = self.MARKERS[part]
            elif part:
                if out and out[-1][0] == self.stream:
                    out[-1] = (self.stream, out[-1][1] + part)
                else:
                    out.append((self.stream, part))
        return out

    def flush(self) -> list[tuple[int, bytes]]:
        """Whatever was held back, at the end of the stream."""
        held, self._held = self._held, b""
        return [(self.stream, held)] if held else []


async def follow_command(
    sandbox: Sandbox, session_id: str, command_id: str, *, follow: bool = True
) -> AsyncIterator[tuple[int, bytes]]:
    """A command's output as (stream, bytes) from the start, live until it ends."""
    path = (
        f"/process/session/{quote(session_id, safe='')}/command/{quote(command_id, safe='')}/logs"
    )
    url = _ws_url(await toolbox_base(sandbox)) + path + ("?follow=true" if follow else "")
    try:
        ws = await connect(
            url,
            additional_headers=auth_headers(),
            open_timeout=HANDSHAKE_SECONDS,
            ping_interval=PING_SECONDS,
            ping_timeout=PING_SECONDS,
            max_size=1 << 20,
            max_queue=RECEIVE_QUEUE,
            compression=None,
        )
    except (InvalidStatus, WebSocketException, OSError, TimeoutError) as error:
        raise _upgrade_error(error, "The log") from None
    demux = Demux()
    try:
        while True:
            try:
                message = await ws.recv()
            except ConnectionClosed as closed:
                if closed.rcvd is not None and closed.rcvd.code == 1000:
                    break
                raise Unavailable("The log stream broke off; follow it again to resume.") from None
            data = message if isinstance(message, bytes) else message.encode()
            for piece in demux.feed(data):
                yield piece
        for piece in demux.flush():
            yield piece
    finally:
        with contextlib.suppress(TimeoutError, WebSocketException, OSError):
            await asyncio.wait_for(ws.close(), 2)


# -- file download ------------------------------------------------------------------


async def _stream_get(
    url: str, *, headers: dict[str, str], what: str, params: dict[str, str] | None = None
) -> AsyncIterator[bytes]:
    """GET `url` and hand back its body in bounded chunks; errors raise before the first.

    A client of its own, not the pooled one: a download is read on the caller's event
    loop for as long as the browser takes, and must not hold the shared pool.
    """
    client = httpx.AsyncClient(timeout=httpx.Timeout(30, read=120))
    try:
        request = client.build_request("GET", url, params=params, headers=headers)
        try:
            response = await client.send(request, stream=True)
        except httpx.TransportError as error:
            raise Unavailable(f"{what} cannot be reached ({type(error).__name__}).") from None
        if response.is_error:
            await response.aread()
            raise _error_for(response)
    except BaseException:
        await client.aclose()
        raise

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes(64 << 10):
                yield chunk
        finally:
            await response.aclose()
            await client.aclose()

    return chunks()


async def download(sandbox: Sandbox, path: str) -> AsyncIterator[bytes]:
    """A file's bytes in bounded chunks (raises before the first chunk if it cannot be read)."""
    url = await toolbox_base(sandbox) + "/files/download"
    return await _stream_get(url, params={"path": path}, headers=auth_headers(), what="The sandbox")


async def build_log(snapshot_id: str) -> AsyncIterator[bytes]:
    """A snapshot's whole build log in bounded chunks, for a download in constant memory.

    Raises before the first chunk if it cannot be read. The key goes in a header from
    here to wherever Daytona keeps the log; the browser only ever talks to Sandbar.
    """
    found = await request("GET", "/snapshots/" + quote(snapshot_id, safe="") + "/build-logs-url")
    url = found.get("url") if isinstance(found, dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise Unavailable("Daytona did not say where this snapshot's build log is.")
    headers = {**auth_header(), "Accept": "*/*"}
    return await _stream_get(url, headers=headers, what="The build log")
