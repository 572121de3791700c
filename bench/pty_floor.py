"""The PTY leg of bench/load.py on its own: what reading N terminals costs, and what the
programs in them cost, with no WebSocket, no sandbox and no second process.

N local PTYs each run bench/load.py's program (1 KB at 10 Hz as 16 writes); they are
read, in turns within one run, either

- bare: a reader on each PTY that reads what is there at every wake-up and drops it
  (the least any reader does: the floor of this leg), or
- ours: the engine's terminals (dashboard/engine/pty.py: ticks, scrollback, one
  client's queue drained by a task, as the engine's WebSocket sender drains it).

It reports this process's CPU and the programs' CPU (the bash processes, from /proc)
per terminal-second, with the load average beside each turn. All local; no network.

    python bench/pty_floor.py [--terminals 50] [--hold 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

from load import descendants_cpu, program

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.engine import pty as ptys
from tests.engine.test_pty_local import spawn


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


async def bare(count: int, argv: list[str], hold: float) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    processes = [await spawn(argv, dict(os.environ), "/tmp") for _ in range(count)]
    masters = [p.pty_master for p in processes]

    def drain(master: int) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(master, 65536):
                pass

    for master in masters:
        assert master is not None
        os.set_blocking(master, False)
        loop.add_reader(master, drain, master)
    try:
        return await measure(hold)
    finally:
        for process, master in zip(processes, masters, strict=True):
            loop.remove_reader(master)  # type: ignore[arg-type]
            process.kill()
            await process.wait()
            process.release()


async def ours(count: int, argv: list[str], hold: float) -> tuple[float, float]:
    manager = ptys.PtyManager(spawn)
    clients = []

    async def client(attachment: ptys.Attachment) -> None:
        while await attachment.next() is not None:
            pass

    for index in range(count):
        terminal = manager.create(f"t{index}", cwd="/tmp", envs={})
        await manager.start(terminal, argv, dict(os.environ))
        clients.append(asyncio.create_task(client(terminal.attach())))
    try:
        return await measure(hold)
    finally:
        await manager.close()
        for task in clients:
            task.cancel()


async def measure(hold: float) -> tuple[float, float]:
    await asyncio.sleep(2)  # the programs have started
    me, programs = own_cpu(), descendants_cpu(os.getpid())
    started = time.monotonic()
    await asyncio.sleep(hold)
    seconds = time.monotonic() - started
    return (own_cpu() - me) / seconds, (descendants_cpu(os.getpid()) - programs) / seconds


async def run(args: argparse.Namespace) -> dict:
    argv = ["bash", "--norc", "--noprofile", "-c", program(args.lines).decode().rstrip("\r")]
    turns: list[dict] = []
    for turn in range(args.rounds):
        kinds = [("bare", bare), ("ours", ours)]
        for kind, how in kinds if turn % 2 == 0 else kinds[::-1]:
            reader, programs = await how(args.terminals, argv, args.hold)
            turns.append(
                {
                    "reader": kind,
                    "reader_cpu_ms_per_terminal_s": round(1000 * reader / args.terminals, 3),
                    "program_cpu_ms_per_terminal_s": round(1000 * programs / args.terminals, 3),
                    "load_average_1m": round(os.getloadavg()[0], 2),
                }
            )
            print(json.dumps(turns[-1]), flush=True)
            await asyncio.sleep(1)

    def mean(kind: str, key: str) -> float:
        return round(statistics.fmean(t[key] for t in turns if t["reader"] == kind), 3)

    return {
        "bench": "pty_floor",
        "terminals": args.terminals,
        "bare_reader_cpu_ms": mean("bare", "reader_cpu_ms_per_terminal_s"),
        "our_reader_cpu_ms": mean("ours", "reader_cpu_ms_per_terminal_s"),
        "pty_program_cpu_ms": mean("bare", "program_cpu_ms_per_terminal_s"),
        "turns": turns,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terminals", type=int, default=50)
    parser.add_argument("--hold", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--lines", type=int, default=16, help="writes per 1 KB")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
