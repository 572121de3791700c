"""Run a command to completion inside a sandbox and collect its combined output."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dashboard.engine.runtime import Runtime

MAX_OUTPUT = 16 << 20  # bytes kept from one command's output; the rest is dropped
DRAIN_AFTER_EXIT = 0.1  # seconds to keep reading once the command itself has exited


class CommandTimeout(Exception):
    """The command ran past its timeout; it and everything it started were killed."""


@dataclass(frozen=True)
class CommandResult:
    """Exit code and combined output of a finished command."""

    exit_code: int
    output: str
    truncated: bool


async def run_command(
    runtime: Runtime,
    sandbox_id: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    time_limit: float,
    stdin: bytes | None = None,
) -> CommandResult:
    """Run ``argv`` in the sandbox; raise :class:`CommandTimeout` after ``time_limit`` seconds."""
    process = await runtime.spawn(sandbox_id, argv, env=env, cwd=cwd, stdin=stdin is not None)
    output = bytearray()
    truncated = False

    async def read() -> None:
        nonlocal truncated
        assert process.stdout is not None
        while chunk := await process.stdout.read(1 << 16):
            room = MAX_OUTPUT - len(output)
            if len(chunk) > room:
                truncated = True
            output.extend(chunk[: max(room, 0)])

    async def feed() -> None:
        writer = process.stdin
        if writer is None or stdin is None:
            return
        with contextlib.suppress(ConnectionError):
            writer.write(stdin)
            await writer.drain()
        writer.close()

    reader = asyncio.create_task(read())
    feeder = asyncio.create_task(feed())
    try:
        try:
            exit_code = await asyncio.wait_for(process.wait(), time_limit)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise CommandTimeout(f"command timed out after {time_limit:g} seconds") from None
        # Background processes it started may hold the output pipe open; read what is
        # there now and stop, as a terminal would.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reader), DRAIN_AFTER_EXIT)
    finally:
        for task in (reader, feeder):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        process.release()
    return CommandResult(exit_code, output.decode(errors="replace"), truncated)
