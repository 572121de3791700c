"""The web terminal and the log viewer, each next to the same thing straight to the toolbox.

Starts a throwaway engine and the dashboard (uvicorn, in its own process so its memory
can be read) on free loopback ports, one sandbox, one signed-in member, then measures,
with the direct-to-toolbox figure from the same run beside each:

- keystroke echo (p50/p99 over N keys, interleaved in blocks) through the dashboard's
  terminal WebSocket and straight through the toolbox PTY WebSocket;
- flood throughput: a large `head -c` of text through each path, the browser side
  acknowledging as it reads;
- the dashboard's RSS growth while a client that neither reads nor acknowledges holds
  a terminal running `yes` (flow control must bound it);
- a 1,000,000-line command log followed to the end through the log viewer's consumer,
  and straight from the toolbox's log WebSocket.

All traffic stays on 127.0.0.1. The last line printed is one JSON object.

    python bench/terminal.py [--keys 400] [--flood-mb 64] [--lines 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx
from serving import free_port, scratch, serve_dashboard
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FLOOD_DONE = b"FLOOD-42-DONE"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Path_:
    """One way to a PTY: through the dashboard (JSON control, acks) or straight to it."""

    def __init__(self, ws: ClientConnection, dashboard: bool) -> None:
        self.ws = ws
        self.dashboard = dashboard
        self.unacked = 0
        self.delivered = 0.0  # of a flood, what arrived (the rest was skipped by flow control)

    async def recv(self) -> bytes:
        while True:
            message = await self.ws.recv()
            if isinstance(message, bytes):
                if self.dashboard:
                    self.unacked += len(message)
                    if self.unacked >= 128 << 10:
                        await self.ws.send(json.dumps({"type": "ack", "bytes": self.unacked}))
                        self.unacked = 0
                return message

    async def until(self, needle: bytes, seconds: float = 60) -> int:
        seen = b""
        total = 0
        async with asyncio.timeout(seconds):
            while needle not in seen:
                data = await self.recv()
                total += len(data)
                seen = (seen + data)[-(len(needle) + 64) :]
        return total

    async def drain(self, seconds: float = 0.3) -> None:
        try:
            async with asyncio.timeout(seconds):
                while True:
                    await self.recv()
        except TimeoutError:
            pass


async def open_dashboard(web: str, cookie: str, sandbox_id: str) -> Path_:
    url = f"ws://{web}/ws/sandboxes/{sandbox_id}/terminal/{uuid.uuid4().hex}/?cols=200&rows=50"
    ws = await connect(
        url,
        additional_headers={"Cookie": f"sessionid={cookie}", "Origin": f"http://{web}"},
        max_size=None,
        compression=None,
    )
    while True:
        message = await ws.recv()
        if isinstance(message, str) and json.loads(message).get("type") == "hello":
            return Path_(ws, dashboard=True)


async def open_direct(toolbox: str, key: str, sandbox_id: str) -> Path_:
    pty_id = f"bench-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(headers=headers) as http:
        body = {"id": pty_id, "cols": 200, "rows": 50}
        (await http.post(f"{toolbox}/{sandbox_id}/process/pty", json=body)).raise_for_status()
    url = f"{toolbox.replace('http://', 'ws://')}/{sandbox_id}/process/pty/{pty_id}/connect"
    ws = await connect(url, additional_headers=headers, max_size=None, compression=None)
    while True:
        message = await ws.recv()
        if isinstance(message, str) and "connected" in message:
            return Path_(ws, dashboard=False)


async def echo_block(path: Path_, keys: int) -> list[float]:
    times = []
    for index in range(keys):
        key = b"abcdefghij"[index % 10 : index % 10 + 1]
        started = time.perf_counter()
        await path.ws.send(key)
        await path.until(key, 10)
        times.append((time.perf_counter() - started) * 1000)
        if index % 50 == 49:
            await path.ws.send(b"\x15")  # ^U: keep the line short
            await path.drain(0.05)
    return times


async def flood(path: Path_, megabytes: int) -> float:
    # The end marker is computed by the shell, so the echoed command line cannot match it.
    await path.ws.send(
        f"yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456"
        f" | head -c {megabytes}M; "
        f"echo; echo FLOOD-$((40+2))-DONE\r".encode()
    )
    started = time.perf_counter()
    received = await path.until(FLOOD_DONE, 300)
    elapsed = time.perf_counter() - started
    path.delivered = received / (megabytes << 20)
    return received / (1 << 20) / elapsed


async def stalled_rss(web: str, cookie: str, sandbox_id: str, pid: int, seconds: float) -> float:
    path = await open_dashboard(web, cookie, sandbox_id)
    await path.ws.send(b"yes 0123456789abcdefghijklmnopqrstuvwxyz\r")
    before = rss_mb(pid)
    peak = before
    # Neither read nor acknowledge: the browser tab is frozen.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        peak = max(peak, rss_mb(pid))
    await path.ws.send(b"\x03")
    await path.ws.close()
    return peak - before


async def logs_dashboard(web: str, cookie: str, sandbox_id: str, lines: int) -> float:
    url = f"ws://{web}/ws/sandboxes/{sandbox_id}/logs/"
    headers = {"Cookie": f"sessionid={cookie}", "Origin": f"http://{web}"}
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        await ws.send(json.dumps({"type": "run", "command": f"seq 1 {lines}"}))
        started = time.perf_counter()
        count = 0
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "lines":
                count += len(message["lines"])
                await ws.send('{"type": "ack"}')
            elif message["type"] == "end":
                break
            elif message["type"] == "error":
                raise RuntimeError(message["message"])
        elapsed = time.perf_counter() - started
    assert count == lines, (count, lines)
    return lines / elapsed


async def logs_direct(toolbox: str, key: str, sandbox_id: str, lines: int) -> float:
    headers = {"Authorization": f"Bearer {key}", "X-Daytona-Split-Output": "true"}
    base = f"{toolbox}/{sandbox_id}/process/session"
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        session = f"bench-{uuid.uuid4().hex[:8]}"
        (await http.post(base, json={"sessionId": session})).raise_for_status()
        body = {"command": f"seq 1 {lines}", "runAsync": True}
        command = (await http.post(f"{base}/{session}/exec", json=body)).json()["cmdId"]
    url = f"{base}/{session}/command/{command}/logs?follow=true".replace("http://", "ws://")
    started = time.perf_counter()
    newlines = 0
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        # Iteration ends when the toolbox closes the stream (1000) after the last line.
        async for data in ws:
            newlines += (data if isinstance(data, bytes) else data.encode()).count(b"\n")
    elapsed = time.perf_counter() - started
    assert newlines == lines, (newlines, lines)
    return lines / elapsed


async def run(args, engine, web: str, cookie: str, sandbox_id: str, pid: int) -> dict:
    dash = await open_dashboard(web, cookie, sandbox_id)
    direct = await open_direct(engine.toolbox_url, engine.api_key, sandbox_id)
    for path in (dash, direct):
        await path.ws.send(b"cat\r")
        await path.drain(0.5)
    via_dashboard: list[float] = []
    via_direct: list[float] = []
    for _ in range(max(1, args.keys // 50)):
        via_dashboard += await echo_block(dash, 50)
        via_direct += await echo_block(direct, 50)
    for path in (dash, direct):
        await path.ws.send(b"\x03")
        await path.drain(0.5)

    # Straight to the toolbox there is no flow control: a bench client starved of CPU
    # is dropped as a slow consumer (1008). Try again on a fresh connection then.
    for attempt in range(3):
        try:
            flood_direct = await flood(direct, args.flood_mb)
            break
        except ConnectionClosedError:
            if attempt == 2:
                raise
            direct = await open_direct(engine.toolbox_url, engine.api_key, sandbox_id)
    flood_dashboard = await flood(dash, args.flood_mb)
    await dash.ws.close()
    await direct.ws.close()

    rss_growth = await stalled_rss(web, cookie, sandbox_id, pid, args.stall_seconds)
    log_direct = await logs_direct(engine.toolbox_url, engine.api_key, sandbox_id, args.lines)
    log_dashboard = await logs_dashboard(web, cookie, sandbox_id, args.lines)

    p50_dash, p50_direct = statistics.median(via_dashboard), statistics.median(via_direct)
    return {
        "echo_p50_ms": round(p50_dash, 3),
        "echo_p99_ms": round(percentile(via_dashboard, 0.99), 3),
        "echo_direct_p50_ms": round(p50_direct, 3),
        "echo_direct_p99_ms": round(percentile(via_direct, 0.99), 3),
        "echo_ratio_p50": round(p50_dash / p50_direct, 2),
        "flood_mb_s": round(flood_dashboard, 1),
        "flood_direct_mb_s": round(flood_direct, 1),
        "flood_ratio": round(flood_dashboard / flood_direct, 2),
        "flood_delivered": round(dash.delivered, 3),
        "rss_growth_mb": round(rss_growth, 1),
        "log_lines": args.lines,
        "log_lines_s": round(log_dashboard),
        "log_direct_lines_s": round(log_direct),
        "log_ratio": round(log_dashboard / log_direct, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=400)
    parser.add_argument("--flood-mb", type=int, default=64)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--stall-seconds", type=float, default=8.0)
    args = parser.parse_args()

    with scratch("sandbar-bench-terminal-") as work:
        os.environ["SANDBAR_DATA_DIR"] = str(work / "web")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
        from tests.engine_server import start_engine

        engine = start_engine(work / "engine")
        dashboard = None
        try:
            with httpx.Client(
                base_url=engine.api_url,
                headers={"Authorization": f"Bearer {engine.api_key}"},
                timeout=60,
            ) as http:
                body = {"name": "bench-terminal", "labels": {"sandbar.owner": "mel"}}
                sandbox = http.post("/sandbox", json=body).raise_for_status().json()

            import django

            django.setup()
            from django.core.management import call_command
            from django.test import Client

            from dashboard.accounts.models import Role, User

            call_command("migrate", verbosity=0)
            user = User.objects.create_user("mel", role=Role.MEMBER)
            client = Client()
            client.force_login(user)
            cookie = client.cookies["sessionid"].value

            port = free_port()
            dashboard = serve_dashboard(work / "web", engine, port)
            web = f"127.0.0.1:{port}"
            result = asyncio.run(run(args, engine, web, cookie, sandbox["id"], dashboard.pid))
        finally:
            if dashboard is not None:
                dashboard.terminate()
                dashboard.wait(10)
            engine.stop()

    print(
        f"echo p50 {result['echo_p50_ms']} ms via dashboard, {result['echo_direct_p50_ms']} ms "
        f"direct (x{result['echo_ratio_p50']}); p99 {result['echo_p99_ms']} ms vs "
        f"{result['echo_direct_p99_ms']} ms"
    )
    print(
        f"flood {result['flood_mb_s']} MB/s via dashboard, {result['flood_direct_mb_s']} MB/s "
        f"direct (x{result['flood_ratio']}); RSS growth with a stalled client "
        f"{result['rss_growth_mb']} MB"
    )
    print(
        f"log of {args.lines:,} lines: {result['log_lines_s']:,} lines/s via dashboard, "
        f"{result['log_direct_lines_s']:,} lines/s direct (x{result['log_ratio']})"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
