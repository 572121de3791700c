"""Session command logs on disk, in the Daytona daemon's format, streamed without buffering.

Every line (or partial line) of output is written with a 3-byte marker in front of it:
``\\x01\\x01\\x01`` for stdout and ``\\x02\\x02\\x02`` for stderr. The markers only switch
the current stream, so a reader concatenating the bytes after each marker gets back the
exact output of each stream. The exit code lives in a separate file written after the
last output, as the daemon does; its presence means "nothing more will be appended".
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

STDOUT = b"\x01\x01\x01"
STDERR = b"\x02\x02\x02"
_MARKER = re.compile(b"(\x01\x01\x01|\x02\x02\x02)")
MARKERS = {1: STDOUT, 2: STDERR}
READ_CHUNK = 64 << 10
FRAME_MAX = 32 << 10  # what one WebSocket frame of a followed log carries at most
SANDBOX_LOG_BYTES = 2 << 30  # all session logs of one sandbox; past it output is dropped
DROPPED_NOTICE = b"[sandbar: the sandbox's session logs reached 2 GiB; output dropped]\n"
FOLLOW_POLL = 0.5  # seconds between checks when a writer has not woken us up


def mark(stream: int, data: bytes) -> bytes:
    """Prefix every line of ``data`` with the stream's marker."""
    marker = MARKERS[stream]
    body = data.replace(b"\n", b"\n" + marker)
    if body.endswith(marker):
        body = body[: -len(marker)]
    return marker + body


class LogBudget:
    """Disk the session logs of one sandbox may use, so output cannot fill the host."""

    def __init__(self, limit: int = SANDBOX_LOG_BYTES) -> None:
        self.limit = limit
        self.used = 0


class CommandLog:
    """One command's log file and exit-code file, and the wake-ups for followers."""

    def __init__(self, directory: Path, budget: LogBudget | None = None) -> None:
        self.directory = directory
        self.budget = budget or LogBudget()
        self.path = directory / "output.log"
        self.exit_path = directory / "exit_code"
        self.size = 0
        self.dropped = 0
        self.exit_code: int | None = None
        self._fd: int | None = None
        self._changed = asyncio.Event()

    def open(self, command: str) -> None:
        """Create the directory, an empty log and the command's metadata."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.directory / "command.json").write_text(json.dumps({"command": command}))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)

    def write(self, stream: int, data: bytes) -> None:
        """Append ``data`` from ``stream`` (1 stdout, 2 stderr), marked line by line."""
        if not data or self._fd is None:
            return
        marked = mark(stream, data)
        room = self.budget.limit - self.budget.used
        if len(marked) > room and not self.dropped:
            # Keep what fits (a marker per line costs at most 3 bytes per byte of output).
            kept = data[: max(room - 3, 0) // 4]
            if kept:
                self.write(stream, kept)
                room = self.budget.limit - self.budget.used
        if len(marked) > room:
            if not self.dropped:
                notice = mark(2, DROPPED_NOTICE)
                os.write(self._fd, notice)
                self.size += len(notice)
                self.budget.used += len(notice)
                self._wake()
            self.dropped += len(data)
            return
        os.write(self._fd, marked)
        self.size += len(marked)
        self.budget.used += len(marked)
        self._wake()

    def remove(self) -> None:
        """Delete the log from disk and give its space back to the budget."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self.budget.used -= self.size
        self.size = 0

    def finish(self, exit_code: int) -> None:
        """Close the log and record the exit code (after all output, as the daemon does)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.exit_code = exit_code
        with contextlib.suppress(OSError):
            self.exit_path.write_text(str(exit_code))
        self._wake()

    @property
    def finished(self) -> bool:
        """Whether the command has ended and its log is complete."""
        return self.exit_code is not None

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self) -> None:
        """Wait until something is appended or the command ends (or a short poll passes)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), FOLLOW_POLL)


@contextlib.contextmanager
def _opened(source: Path | IO[bytes]) -> Iterator[IO[bytes]]:
    """A path is opened (and closed) here; an open file is used as is (and kept open)."""
    if isinstance(source, Path):
        with open(source, "rb") as handle:
            yield handle
    else:
        yield source


def tail_offset(source: Path | IO[bytes], lines: int) -> int:
    """The byte offset where the last ``lines`` lines of the file begin (0 = the end)."""
    with _opened(source) as handle:
        end = handle.seek(0, os.SEEK_END)
        if lines <= 0:
            return end
        position = end
        # A final newline ends the last line rather than starting an empty one.
        handle.seek(max(end - 1, 0))
        wanted = lines + 1 if handle.read(1) == b"\n" else lines
        while position > 0:
            step = min(READ_CHUNK, position)
            position -= step
            handle.seek(position)
            block = handle.read(step)
            index = len(block)
            while True:
                index = block.rfind(b"\n", 0, index)
                if index < 0:
                    break
                wanted -= 1
                if wanted == 0:
                    return position + index + 1
        return 0


def _frame_cut(data: bytes) -> int:
    """Where to end a frame so that no marker is split: after the last newline if any,
    else before trailing bytes that could begin a marker."""
    newline = data.rfind(b"\n")
    if newline >= 0:
        return newline + 1
    cut = len(data)
    while cut > 0 and len(data) - cut < 2 and data[cut - 1] in (1, 2):
        cut -= 1
    return cut or len(data)


async def stream_frames(
    log: CommandLog,
    *,
    follow: bool,
    offset: int = 0,
    is_live: object = None,
    source: IO[bytes] | None = None,
) -> AsyncIterator[bytes]:
    """Yield the log from ``offset`` as frames of at most :data:`FRAME_MAX` bytes.

    With ``follow`` it keeps waiting for more until the command has finished and the
    file is drained. Only one read buffer is held at a time, so a log of any size costs
    the same memory. ``is_live`` (a callable) lets the caller end the stream early, e.g.
    when the session is deleted.
    """
    carry = b""
    # A local file read of at most 32 KiB: quicker than handing it to a thread.
    with _opened(source or log.path) as handle:
        handle.seek(offset)
        while True:
            finished = log.finished  # read before the data: a finish after it rereads
            chunk = handle.read(FRAME_MAX - len(carry))
            if chunk:
                data = carry + chunk
                cut = _frame_cut(data)
                carry = data[cut:]
                yield data[:cut]
                continue
            # At the end of what is written so far, send the partial line too: it may be
            # a prompt the user is waiting for.
            if carry:
                yield carry
                carry = b""
            if not follow or finished or (callable(is_live) and not is_live()):
                return
            await log.changed()


class Demuxer:
    """Incremental splitting of marked log bytes into (stream, bytes) pieces; a marker
    may be split across the chunks fed in."""

    def __init__(self) -> None:
        self.stream = 0
        self._pending = b""

    def feed(self, chunk: bytes) -> list[tuple[int, bytes]]:
        """The pieces ``chunk`` completes (bytes before the first marker are dropped);
        consecutive pieces of one stream come out joined."""
        data = self._pending + chunk
        pieces: list[tuple[int, bytes]] = []
        run: list[bytes] = []
        # re.split does the scanning in C; Python only walks the pieces.
        parts = _MARKER.split(data)
        # After the last whole marker, hold back up to two bytes that may start one.
        last = parts[-1]
        hold = 0
        if last and last[-1] in (1, 2):
            while hold < 2 and hold < len(last) and last[-1 - hold] == last[-1]:
                hold += 1
        self._pending = last[len(last) - hold :] if hold else b""
        parts[-1] = last[: len(last) - hold]
        for index, part in enumerate(parts):
            if index % 2:  # a marker
                stream = 1 if part == STDOUT else 2
                if stream != self.stream and run:
                    pieces.append((self.stream, b"".join(run)))
                    run = []
                self.stream = stream
            elif part and self.stream:
                run.append(part)
        if run:
            pieces.append((self.stream, b"".join(run)))
        return pieces

    def flush(self) -> list[tuple[int, bytes]]:
        """What was held back, at the end of the log."""
        pending, self._pending = self._pending, b""
        return [(self.stream, pending)] if pending and self.stream else []


def demux(chunks: Iterator[bytes] | list[bytes]) -> Iterator[tuple[int, bytes]]:
    """Split marked log bytes into (stream, bytes) pieces; markers may span chunks."""
    demuxer = Demuxer()
    for chunk in chunks:
        yield from demuxer.feed(chunk)
    yield from demuxer.flush()


def plain_logs(source: Path | IO[bytes], offset: int = 0, *, split: bool) -> Iterator[bytes]:
    """The log as plain text: as stored (``split``) or with the markers taken out."""
    if split:
        yield from read_file_chunks(source, offset)
        return
    for _, piece in demux(read_file_chunks(source, offset)):
        yield piece


def read_file_chunks(source: Path | IO[bytes], offset: int = 0) -> Iterator[bytes]:
    """The file from ``offset``, one bounded chunk at a time."""
    with _opened(source) as handle:
        handle.seek(offset)
        while chunk := handle.read(READ_CHUNK):
            yield chunk


def json_logs(source: Path | IO[bytes], offset: int = 0) -> Iterator[bytes]:
    """``{"output", "stdout", "stderr"}`` as a stream of JSON, one pass per field.

    ``output`` is both streams without markers, as the daemon returns it to a
    split-output client. Each field is decoded incrementally, so memory stays flat. Pass
    an open file to read all three passes from it even if the path goes away meanwhile.
    """
    fields = (("output", (1, 2)), ("stdout", (1,)), ("stderr", (2,)))
    for index, (name, streams) in enumerate(fields):
        yield (b"{" if index == 0 else b",") + json.dumps(name).encode() + b':"'
        # One decoder per stream: a character may be split where the other stream cuts in.
        decoders = {s: codecs.getincrementaldecoder("utf-8")(errors="replace") for s in streams}
        for stream, piece in demux(read_file_chunks(source, offset)):
            if stream in decoders:
                text = decoders[stream].decode(piece)
                if text:
                    yield json.dumps(text)[1:-1].encode()
        for decoder in decoders.values():
            tail = decoder.decode(b"", final=True)
            if tail:
                yield json.dumps(tail)[1:-1].encode()
        yield b'"'
    yield b"}"
