"""PTY and session-log figures of the embedded engine, each next to a bare baseline.

Starts a throwaway engine on a free loopback port and one sandbox, then measures, with
the baseline from the same run beside each figure:

- keystroke echo through the engine's PTY WebSocket (p50/p99 over N keys) against a
  bare local PTY running the same shell;
- output flood throughput through the WebSocket against reading a bare PTY, with the
  engine's RSS before and after;
- the engine's RSS while ``cat /dev/urandom`` runs with one client reading and one
  client stalled (the stalled one must be dropped, not buffered for);
- following the log of a 1,000,000-line session command against reading the same log
  file straight from disk.

All traffic stays on 127.0.0.1. The last line printed is one JSON object.

    python bench/pty_flood.py [--keys 1000] [--flood-mb 200]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import pty
import select
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.engine_server import EngineServer, start_engine  # noqa: E402

TARGETS = {
    "pty_echo_p99_ms": 5.0,  # at most
    "engine_rss_growth_mb": 20.0,  # at most, over a flood and a stalled client
    "flood_mb_s": 30.0,  # at least (a bare PTY reads ~90 MB/s here; the relay is Python)
    "log_follow_lines_s": 500_000.0,  # at least
}
SHELL = ["/bin/bash", "--norc", "--noprofile", "-i"]
FLOOD = "head -c {size} /dev/zero | tr '\\0' x; echo; echo flood-$((4+5))\n"


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# -- bare baselines -----------------------------------------------------------------


def _read_for(fd: int, wanted: bytes, deadline: float) -> bytes:
    seen = b""
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            seen = seen[-4096:] + os.read(fd, 1 << 16)
    return seen


def bare_pty(keys: int, flood_mb: int) -> tuple[list[float], float]:
    """Echo timings and flood MB/s of the same shell on a plain local PTY."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(SHELL[0], SHELL)  # noqa: S606 -- a fixed argv, no shell parsing
    try:
        # The quotes keep the echo of the typed line from matching what we wait for.
        os.write(fd, b"stty -echoctl; PS1='$ '; echo rea''dy\n")
        _read_for(fd, b"ready", time.monotonic() + 5)
        timings = []
        for index in range(keys):
            key = bytes([97 + index % 26])
            start = time.perf_counter()
            os.write(fd, key)
            _read_for(fd, key, time.monotonic() + 5)
            timings.append((time.perf_counter() - start) * 1000)
        # Ctrl-C drops the typed line (and flushes input typed after it: wait for the prompt).
        os.write(fd, b"\x03")
        _read_for(fd, b"$ ", time.monotonic() + 5)
        os.write(fd, b"echo sy''nced\n")
        _read_for(fd, b"synced", time.monotonic() + 5)
        command = FLOOD.format(size=flood_mb << 20)
        start = time.perf_counter()
        os.write(fd, command.encode())
        _read_for(fd, b"flood-9", time.monotonic() + 600)
        seconds = time.perf_counter() - start
        os.write(fd, b"exit\n")
    finally:
        os.close(fd)
        os.waitpid(pid, 0)
    return timings, flood_mb / seconds


# -- through the engine -------------------------------------------------------------


class Bench:
    """One engine, one sandbox and the figures measured against them."""

    def __init__(self, server: EngineServer, sandbox_id: str) -> None:
        self.server = server
        self.sandbox_id = sandbox_id
        self.headers = {"Authorization": f"Bearer {server.api_key}"}
        self.ws_base = f"ws://127.0.0.1:{server.port}/toolbox/{sandbox_id}"
        assert server.process is not None
        self.pid = server.process.pid

    def toolbox(self) -> httpx.Client:
        """Plain HTTP to this sandbox's toolbox."""
        base = f"http://127.0.0.1:{self.server.port}/toolbox/{self.sandbox_id}"
        return httpx.Client(base_url=base, headers=self.headers, timeout=600)

    def new_pty(self, pty_id: str) -> None:
        """Create a terminal over REST."""
        with self.toolbox() as client:
            response = client.post("/process/pty", json={"id": pty_id, "cols": 200, "rows": 50})
            response.raise_for_status()

    def attach(self, pty_id: str) -> Any:
        """A WebSocket client of a terminal."""
        return connect(
            f"{self.ws_base}/process/pty/{pty_id}/connect",
            additional_headers=self.headers,
            max_size=None,
        )

    async def echo_and_flood(self, keys: int, flood_mb: int) -> dict[str, Any]:
        """Keystroke echo timings, then a flood with the RSS around it."""
        self.new_pty("bench-echo")
        async with self.attach("bench-echo") as socket_:
            await socket_.recv()  # connected
            await socket_.send(b"stty -echoctl; PS1='$ '; echo rea''dy\n")
            await _read_until(socket_, b"ready", 10)
            timings = []
            for index in range(keys):
                key = bytes([97 + index % 26])
                start = time.perf_counter()
                await socket_.send(key)
                await _read_until(socket_, key, 5)
                timings.append((time.perf_counter() - start) * 1000)
            await socket_.send(b"\x03")
            await _read_until(socket_, b"$ ", 5)
            await socket_.send(b"echo sy''nced\n")
            await _read_until(socket_, b"synced", 5)
            rss_before = rss_mb(self.pid)
            command = FLOOD.format(size=flood_mb << 20)
            start = time.perf_counter()
            await socket_.send(command.encode())
            await _read_until(socket_, b"flood-9", 600)
            seconds = time.perf_counter() - start
            rss_after = rss_mb(self.pid)
            await socket_.send(b"exit\n")
        return {
            "timings": timings,
            "flood_mb_s": flood_mb / seconds,
            "rss_before": rss_before,
            "rss_after": rss_after,
        }

    async def urandom_with_stalled_client(self, seconds: float) -> dict[str, float]:
        """Engine RSS while ``cat /dev/urandom`` floods one reader and one stalled client."""
        self.new_pty("bench-urandom")
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
        stalled.connect(("127.0.0.1", self.server.port))
        stalled.sendall(
            (
                f"GET /toolbox/{self.sandbox_id}/process/pty/bench-urandom/connect HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\nAuthorization: Bearer {self.server.api_key}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            ).encode()
        )
        peak = baseline = rss_mb(self.pid)
        received = 0
        async with self.attach("bench-urandom") as reader:
            await reader.recv()
            await reader.send(b"cat /dev/urandom\n")
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                frame = await reader.recv()
                received += len(frame)
                peak = max(peak, rss_mb(self.pid)) if received % 64 == 0 else peak
            peak = max(peak, rss_mb(self.pid))
            await reader.send(b"\x03exit\n")
        stalled.close()
        with self.toolbox() as client:
            client.delete("/process/pty/bench-urandom")
        return {"baseline": baseline, "peak": peak, "mb_s": received / seconds / (1 << 20)}

    def run_command(self, command: str) -> str:
        """Run a command in a new session and wait for it; its id."""
        with self.toolbox() as client:
            client.post("/process/session", json={"sessionId": "bench"}).raise_for_status()
            body = {"command": command, "runAsync": True}
            cmd_id = str(client.post("/process/session/bench/exec", json=body).json()["cmdId"])
            while (
                client.get(f"/process/session/bench/command/{cmd_id}").json().get("exitCode")
                is None
            ):
                time.sleep(0.05)
        return cmd_id

    def read_log_bare(self) -> tuple[int, float]:
        """Lines in the command's log file read straight from disk, and the seconds."""
        log_file = next((self.server.data_dir / "engine" / "sessions").glob("*/*/*/output.log"))
        start = time.perf_counter()
        lines = 0
        with open(log_file, "rb") as handle:
            while chunk := handle.read(32 << 10):
                lines += chunk.count(b"\n")
        return lines, time.perf_counter() - start

    async def follow_log(self, lines: int) -> dict[str, float]:
        """Lines/s following a command's log over WebSocket, and reading its file bare."""
        cmd_id = await asyncio.to_thread(self.run_command, f"seq 1 {lines}")
        url = f"{self.ws_base}/process/session/bench/command/{cmd_id}/logs?follow=true"
        counted = 0
        start = time.perf_counter()
        # As the SDK does: its version asks for split (marked) output.
        headers = {**self.headers, "X-Daytona-SDK-Version": "0.226.1"}
        async with connect(url, additional_headers=headers, max_size=None) as socket_:
            async for frame in socket_:
                counted += frame.count(b"\n" if isinstance(frame, bytes) else "\n")
        follow_seconds = time.perf_counter() - start
        assert counted == lines, counted
        bare, bare_seconds = await asyncio.to_thread(self.read_log_bare)
        return {"follow": lines / follow_seconds, "bare": bare / bare_seconds}


async def _read_until(socket_: ClientConnection, needle: bytes, seconds: float) -> None:
    seen = b""
    deadline = time.monotonic() + seconds
    while needle not in seen:
        frame = await asyncio.wait_for(socket_.recv(), max(deadline - time.monotonic(), 0.01))
        seen = seen[-4096:] + (frame if isinstance(frame, bytes) else frame.encode())


async def measure(bench: Bench, options: argparse.Namespace) -> dict[str, Any]:
    """Every engine-side figure."""
    echo = await bench.echo_and_flood(options.keys, options.flood_mb)
    urandom = await bench.urandom_with_stalled_client(options.urandom_seconds)
    follow = await bench.follow_log(options.log_lines)
    return {"echo": echo, "urandom": urandom, "follow": follow}


def main() -> int:
    """Run the benchmark and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--flood-mb", type=int, default=200)
    parser.add_argument("--urandom-seconds", type=float, default=5.0)
    parser.add_argument("--log-lines", type=int, default=1_000_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sandbar-bench-") as tmp:
        server = start_engine(Path(tmp))
        try:
            with server.client() as api:
                sandbox = api.post("/sandbox", json={}).json()
            results = asyncio.run(measure(Bench(server, sandbox["id"]), options))
        finally:
            server.stop()
    bare_timings, bare_flood = bare_pty(options.keys, options.flood_mb)
    echo, urandom, follow = results["echo"], results["urandom"], results["follow"]
    p50, p99 = statistics.median(echo["timings"]), percentile(echo["timings"], 0.99)
    bare_p50, bare_p99 = statistics.median(bare_timings), percentile(bare_timings, 0.99)
    growth = max(echo["rss_after"] - echo["rss_before"], urandom["peak"] - urandom["baseline"])
    print(f"{'':28}{'engine':>14}{'bare':>14}{'ratio':>8}")
    rows = [
        ("keystroke echo p50 (ms)", p50, bare_p50),
        ("keystroke echo p99 (ms)", p99, bare_p99),
        ("flood throughput (MB/s)", echo["flood_mb_s"], bare_flood),
        ("log follow (lines/s)", follow["follow"], follow["bare"]),
    ]
    for label, engine_value, bare_value in rows:
        ratio = engine_value / bare_value if bare_value else float("nan")
        print(f"{label:28}{engine_value:14.3f}{bare_value:14.3f}{ratio:8.2f}")
    print(
        f"engine RSS: {echo['rss_before']:.1f} -> {echo['rss_after']:.1f} MiB over the flood; "
        f"{urandom['baseline']:.1f} -> peak {urandom['peak']:.1f} MiB over "
        f"{options.urandom_seconds:g} s of cat /dev/urandom ({urandom['mb_s']:.1f} MB/s to the "
        "reading client) with a stalled client attached"
    )
    summary = {
        "pty_echo_p50_ms": round(p50, 3),
        "pty_echo_p99_ms": round(p99, 3),
        "pty_echo_bare_p50_ms": round(bare_p50, 3),
        "pty_echo_ratio": round(p50 / bare_p50, 2),
        "flood_mb_s": round(echo["flood_mb_s"], 1),
        "flood_bare_mb_s": round(bare_flood, 1),
        "engine_rss_before_mb": round(echo["rss_before"], 1),
        "engine_rss_after_mb": round(echo["rss_after"], 1),
        "engine_rss_growth_mb": round(growth, 1),
        "log_follow_lines_s": round(follow["follow"]),
        "log_read_bare_lines_s": round(follow["bare"]),
        "targets": TARGETS,
        "meets_targets": p99 <= TARGETS["pty_echo_p99_ms"]
        and growth <= TARGETS["engine_rss_growth_mb"]
        and echo["flood_mb_s"] >= TARGETS["flood_mb_s"]
        and follow["follow"] >= TARGETS["log_follow_lines_s"],
        "keys": options.keys,
        "date": datetime.date.today().isoformat(),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
