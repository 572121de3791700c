"""The event loop the engine is served on closes each pipe's descriptor exactly once.

The engine reads command output and writes session input through pipe transports
while worker threads open files. A loop that closed a pipe's descriptor a second time
(uvloop does: MagicStack/uvloop#763) closed whatever descriptor had just been given
the same number: a client's socket, a disk image, a terminal.
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import pytest

from dashboard.engine.config import EngineConfig
from dashboard.engine.server import uvicorn_config


class ProbePipe(io.FileIO):
    """A pipe's file object that takes two fresh descriptors while it is being closed.

    The kernel hands out the lowest free numbers: if the loop closed the pipe's
    descriptor before this, the fresh ones reuse its number, and the close that
    follows closes one of them.
    """

    fresh: tuple[int, int] | None = None

    def close(self) -> None:
        if not self.closed and self.fresh is None:
            self.fresh = os.pipe()
        super().close()


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@pytest.mark.parametrize("direction", ["read", "write"])
def test_closing_a_pipe_transport_leaves_other_descriptors_open(
    tmp_path: Path, direction: str
) -> None:
    loop_factory = uvicorn_config(EngineConfig(data_dir=tmp_path), app=None).get_loop_factory()
    read_end, write_end = os.pipe()
    if direction == "read":
        probe, other_end = ProbePipe(read_end, "rb"), write_end
    else:
        probe, other_end = ProbePipe(write_end, "wb"), read_end

    async def connect_and_close() -> None:
        loop = asyncio.get_running_loop()
        if direction == "read":
            transport, _ = await loop.connect_read_pipe(asyncio.Protocol, probe)
        else:
            transport, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, probe)
        transport.close()
        for _ in range(10):  # connection_lost (and the file's close) come a turn later
            await asyncio.sleep(0)

    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(connect_and_close())
        assert probe.closed
        assert probe.fresh is not None
        assert [fd for fd in probe.fresh if not _is_open(fd)] == [], (
            "the loop closed the pipe's descriptor twice; the second close hit a new one"
        )
    finally:
        for fd in (other_end, *(probe.fresh or ())):
            if _is_open(fd):
                os.close(fd)
