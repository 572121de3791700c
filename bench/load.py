"""Terminals under load: how many a 2-core machine holds, and where it breaks and why.

Starts a throwaway engine and the dashboard (uvicorn, as `make run` serves it) as two
processes on free loopback ports, a few sandboxes shared by many shells (sandboxes
are expensive; a shell is not), and one signed-in admin. Then it ramps N terminals
(25, 50, 100, 200, ... up to --max), each a dashboard terminal WebSocket running a
program that prints 1 KB at 10 Hz, acknowledged as the browser does. At each step:

- a keystroke echo is timed once a second on every terminal (the line discipline
  echoes it while the program prints, so it crosses every hop both ways);
- for --hold seconds the CPU time (utime+stime from /proc/PID/stat) of the dashboard
  and of the engine is read, as is their RSS and open descriptors against their limit:
  CPU per terminal-second is the figure that means something on a shared machine;
- then for --page-seconds the sandboxes page is loaded by --page-clients concurrent
  clients while the terminals go on.

A step breaks the goal (echo p99 over --echo-limit-ms, a drop or an error); the ramp
stops at a hard break (p99 over --hard-limit-ms, or drops or errors on over 5% of the
terminals) and says why: which process was CPU bound (over 85% of a core: each is
one event loop), whether the whole host was, descriptors, memory. At the end every
shell exits and the RSS of both processes is read again, against the baseline taken
before the ramp. The load average goes with every step: the machine is shared.

The last line printed is one JSON object. All traffic stays on 127.0.0.1.

    python bench/load.py [--max 200] [--steps 25,50,100,200] [--hold 15] [--page-seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from serving import free_port, scratch, serve_dashboard
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PER_SANDBOX = 50  # shells per sandbox (the engine allows 64)
ACK_EVERY = 32 << 10  # as the page (static/js/terminal.js) acknowledges what it drew:
ACK_DELAY = 1.0  # in batches of 32 KiB, or what is left a second after the last output
ECHO_TIMEOUT = 5.0
IDLE_SECONDS = 6.0  # CPU read with no terminal open (ticks, samplers)
CPU_BOUND = 0.85  # of one core: each process is one event loop
KEYS = b"abcdefghijklmnopqrstuvwyz"  # never in the program's output (dots)


def program(lines: int) -> bytes:
    """1 KB ten times a second as `lines` lines (each its own write, as a program logging
    line by line writes), with bash builtins only: no fork per line. The pause is a read
    with a timeout on a FIFO nobody writes to, so stdin stays free for the typed keys."""
    width = max(1, 1024 // lines - 1)
    return (
        f"f=/tmp/load-$$; mkfifo $f; exec 3<>$f; rm $f; printf -v s '%{width}s' ''; "
        f's=${{s// /.}}; while :; do for i in {{1..{lines}}}; do echo "$s"; done; '
        "read -t 0.1 -u 3; done\r"
    ).encode()


TICKS = os.sysconf("SC_CLK_TCK")


# -- the processes ------------------------------------------------------------------------


@dataclass
class Sample:
    """One reading of a process: CPU seconds, RSS, descriptors."""

    cpu: float
    system: float  # of which in the kernel (stime): socket and PTY calls
    rss_kb: int
    fds: int
    fd_limit: int


def sample(pid: int) -> Sample:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    user, system = int(fields[11]) / TICKS, int(fields[12]) / TICKS
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    limit = 0
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            limit = int(line.split()[3])
    return Sample(user + system, system, rss, len(os.listdir(f"/proc/{pid}/fd")), limit)


def descendants_cpu(root: int) -> float:
    """CPU seconds (utime+stime) of the live processes under ``root``, not its own: the
    sandboxes' processes under the engine, the programs in the PTYs among them."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        times[pid] = (int(fields[11]) + int(fields[12])) / TICKS
    total, todo = 0.0, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total


def host_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole host, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


# -- one terminal ---------------------------------------------------------------------------


@dataclass
class Terminal:
    """One browser tab's terminal: reads and acknowledges output, times echoes."""

    ws: ClientConnection
    received: int = 0
    frames: int = 0
    unacked: int = 0
    closing: bool = False
    dropped: str | None = None
    exited: bool = False
    echoes: list[float] = field(default_factory=list)
    lost_echoes: int = 0
    waiting: tuple[int, float] | None = None  # the key sent and when
    tasks: list[asyncio.Task] = field(default_factory=list)
    ack_timer: asyncio.TimerHandle | None = None
    sending: set[asyncio.Task] = field(default_factory=set)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    shell: bool = True  # False on the floor: nothing there exits on "exit"

    async def read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, str):
                    if json.loads(message).get("type") == "exit":
                        self.exited = True
                    continue
                self.received += len(message)
                self.frames += 1
                if not self.started.is_set() and b"." * 8 in message:
                    self.started.set()
                if self.waiting is not None and self.waiting[0] in message:
                    self.echoes.append((time.perf_counter() - self.waiting[1]) * 1000)
                    self.waiting = None
                self.unacked += len(message)
                if self.unacked >= ACK_EVERY:
                    self.ack()
                elif self.ack_timer is None:
                    self.ack_timer = asyncio.get_running_loop().call_later(ACK_DELAY, self.ack)
        except ConnectionClosed as closed:
            if not self.closing:
                self.dropped = f"closed {closed.rcvd.code if closed.rcvd else 'abruptly'}"
            return
        if not self.closing:
            self.dropped = "closed by the server"

    def ack(self) -> None:
        if self.ack_timer is not None:
            self.ack_timer.cancel()
            self.ack_timer = None
        if self.unacked and not self.closing:
            message = json.dumps({"type": "ack", "bytes": self.unacked})
            self.unacked = 0
            task = asyncio.create_task(self.send_quietly(message))
            self.sending.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self.sending.discard)

    async def send_quietly(self, message: str | bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(message)

    async def type_keys(self) -> None:
        await asyncio.sleep(random.random())  # spread the keys over the second
        for key in itertools.cycle(KEYS):
            if self.waiting is not None:
                if time.perf_counter() - self.waiting[1] < ECHO_TIMEOUT:
                    await asyncio.sleep(1)
                    continue
                self.lost_echoes += 1
            self.waiting = (key, time.perf_counter())
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(bytes([key]))
            await asyncio.sleep(1)

    def take_echoes(self) -> list[float]:
        echoes, self.echoes = self.echoes, []
        return echoes

    async def close(self) -> None:
        """Ends the shell (Ctrl-C, exit) and then the socket, as a person would."""
        for task in self.tasks[1:]:
            task.cancel()
        if self.shell:
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(b"\x03")
                await self.ws.send(b"exit\r")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.tasks[0]), 10)
        self.closing = True
        await self.ws.close()
        self.tasks[0].cancel()


async def open_terminal(
    web: str, cookie: str, sandbox_id: str, lines: int, shell: bool = True
) -> Terminal:
    url = f"ws://{web}/ws/sandboxes/{sandbox_id}/terminal/{uuid.uuid4().hex}/?cols=120&rows=30"
    headers = {"Cookie": f"sessionid={cookie}", "Origin": f"http://{web}"}
    ws = await connect(url, additional_headers=headers, max_size=None, compression=None)
    async with asyncio.timeout(30):
        while True:
            message = await ws.recv()
            if isinstance(message, str) and json.loads(message).get("type") == "hello":
                break
    terminal = Terminal(ws, shell=shell)
    terminal.tasks.append(asyncio.create_task(terminal.read()))
    await ws.send(program(lines))
    async with asyncio.timeout(30):
        await terminal.started.wait()
    terminal.tasks.append(asyncio.create_task(terminal.type_keys()))
    return terminal


# -- the ramp -------------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    web: str
    cookie: str
    sandboxes: list[str]
    dashboard_pid: int
    engine_pid: int
    terminals: list[Terminal] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    idle_ms_s: float = 0.0  # both processes' CPU with no terminal open
    floor: bool = False  # bench/floor_engine.py and bench/floor_dashboard.py, no shells

    @property
    def pids(self) -> dict[str, int]:
        return {"dashboard": self.dashboard_pid, "engine": self.engine_pid}

    async def grow(self, count: int) -> None:
        gate = asyncio.Semaphore(self.args.open_concurrency)

        async def one(index: int) -> None:
            async with gate:
                sandbox = self.sandboxes[(index // PER_SANDBOX) % len(self.sandboxes)]
                try:
                    self.terminals.append(
                        await open_terminal(
                            self.web, self.cookie, sandbox, self.args.lines, not self.floor
                        )
                    )
                except Exception as error:  # every failure is a figure
                    self.errors[f"open: {type(error).__name__}: {str(error)[:80]}"] += 1

        start = len(self.terminals) + sum(self.errors.values())
        await asyncio.gather(*(one(start + i) for i in range(count - len(self.terminals))))

    async def pages(self, seconds: float) -> tuple[list[float], int]:
        times: list[float] = []
        failures = 0
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(
            base_url=f"http://{self.web}", cookies={"sessionid": self.cookie}, timeout=30
        ) as http:

            async def client() -> None:
                nonlocal failures
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    try:
                        response = await http.get("/sandboxes/")
                        ok = response.status_code == 200 and b'<tr id="sb-' in response.content
                    except httpx.HTTPError as error:
                        self.errors[f"page: {type(error).__name__}"] += 1
                        ok = False
                    if ok:
                        times.append((time.perf_counter() - started) * 1000)
                    else:
                        failures += 1

            await asyncio.gather(*(client() for _ in range(self.args.page_clients)))
        return times, failures

    async def step(self, count: int, baseline: dict[str, Sample]) -> dict:
        errors_before = sum(self.errors.values())
        await self.grow(count)
        live = [t for t in self.terminals if t.dropped is None]
        await asyncio.sleep(2)  # let the opening settle
        for terminal in live:
            terminal.take_echoes()
        lost_before = sum(t.lost_echoes for t in live)
        bytes_before = sum(t.received for t in live)
        frames_before = sum(t.frames for t in live)
        pids = self.pids
        before = {name: sample(pid) for name, pid in pids.items()}
        program_before = descendants_cpu(self.engine_pid)
        host_before = host_busy()
        started = time.monotonic()
        await asyncio.sleep(self.args.hold)
        seconds = time.monotonic() - started
        after = {name: sample(pid) for name, pid in pids.items()}
        program = descendants_cpu(self.engine_pid) - program_before
        host_after = host_busy()
        bytes_s = (sum(t.received for t in live) - bytes_before) / seconds / max(1, len(live))
        frames_s = (sum(t.frames for t in live) - frames_before) / seconds / max(1, len(live))
        page_times, page_failures = (
            await self.pages(self.args.page_seconds) if self.args.page_seconds > 0 else ([], 0)
        )
        echoes = [e for t in live for e in t.take_echoes()]
        drops = sum(t.dropped is not None for t in live)
        lost = sum(t.lost_echoes for t in live) - lost_before
        errors = sum(self.errors.values()) - errors_before + page_failures
        held = len(live) - drops
        cpu = {name: after[name].cpu - before[name].cpu for name in pids}
        busy = (host_after[0] - host_before[0]) / max(1, host_after[1] - host_before[1])
        result = {
            "terminals": held,
            "asked": count,
            "echo_p50_ms": round(statistics.median(echoes), 2) if echoes else None,
            "echo_p99_ms": round(percentile(echoes, 0.99), 2) if echoes else None,
            "echoes": len(echoes),
            "lost_echoes": lost,
            "drops": drops,
            "errors": errors,
            "output_kb_s": round(bytes_s / 1024, 2),
            "frames_s": round(frames_s, 2),
            "dashboard_cpu_pct": round(100 * cpu["dashboard"] / seconds, 1),
            "engine_cpu_pct": round(100 * cpu["engine"] / seconds, 1),
            "dashboard_sys_pct": round(
                100 * (after["dashboard"].system - before["dashboard"].system) / seconds, 1
            ),
            "engine_sys_pct": round(
                100 * (after["engine"].system - before["engine"].system) / seconds, 1
            ),
            "host_busy_pct": round(100 * busy, 1),
            "cpu_ms_per_terminal_s": round(
                1000 * (cpu["dashboard"] + cpu["engine"]) / seconds / max(1, held), 3
            ),
            "net_cpu_ms_per_terminal_s": round(
                (1000 * (cpu["dashboard"] + cpu["engine"]) / seconds - self.idle_ms_s)
                / max(1, held),
                3,
            ),
            "dashboard_cpu_ms_per_terminal_s": round(
                1000 * cpu["dashboard"] / seconds / max(1, held), 3
            ),
            "engine_cpu_ms_per_terminal_s": round(1000 * cpu["engine"] / seconds / max(1, held), 3),
            # The sandboxes' processes: the programs in the PTYs (kernel PTY work done
            # in kworkers is nobody's here; it shows in host_busy_pct only).
            "program_cpu_ms_per_terminal_s": round(1000 * program / seconds / max(1, held), 3),
            "dashboard_kb_per_terminal": round(
                (after["dashboard"].rss_kb - baseline["dashboard"].rss_kb) / max(1, held), 1
            ),
            "engine_kb_per_terminal": round(
                (after["engine"].rss_kb - baseline["engine"].rss_kb) / max(1, held), 1
            ),
            "dashboard_fds": f"{after['dashboard'].fds}/{after['dashboard'].fd_limit}",
            "engine_fds": f"{after['engine'].fds}/{after['engine'].fd_limit}",
            "page_rps": round(len(page_times) / max(self.args.page_seconds, 1e-9), 1),
            "page_p99_ms": round(percentile(page_times, 0.99), 1) if page_times else None,
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
        result["why"] = self.why(result, after, cpu, seconds, busy)
        return result

    def why(
        self, result: dict, after: dict[str, Sample], cpu: dict, seconds: float, busy: float
    ) -> list[str]:
        """What limits this step, in words."""
        reasons = []
        for name, used in cpu.items():
            if used / seconds >= CPU_BOUND:
                reasons.append(f"the {name} is CPU bound ({100 * used / seconds:.0f}% of a core)")
        if busy >= 0.9:
            reasons.append(f"the host is out of CPU ({100 * busy:.0f}% busy, all processes)")
        for name, reading in after.items():
            if reading.fds >= 0.9 * reading.fd_limit:
                reasons.append(f"the {name} is near its descriptor limit ({reading.fds})")
        if result["drops"] or result["errors"] or result["lost_echoes"]:
            top = ", ".join(f"{k} x{v}" for k, v in self.errors.most_common(3))
            dropped = Counter(t.dropped for t in self.terminals if t.dropped)
            reasons.append(
                f"{result['drops']} drops ({dict(dropped)}), {result['errors']} errors ({top}), "
                f"{result['lost_echoes']} echoes lost"
            )
        return reasons

    async def close_all(self) -> None:
        gate = asyncio.Semaphore(self.args.open_concurrency * 2)

        async def one(terminal: Terminal) -> None:
            async with gate:
                await terminal.close()

        await asyncio.gather(*(one(t) for t in self.terminals))
        self.terminals = []


def steps_for(args: argparse.Namespace) -> list[int]:
    if args.steps:
        return [int(s) for s in args.steps.split(",") if int(s) <= args.max]
    steps, n = [], 25
    while n < args.max:
        steps.append(n)
        n *= 2
    return [*steps, args.max]


def met_goal(step: dict, args: argparse.Namespace) -> bool:
    p99 = step["echo_p99_ms"]
    return (
        p99 is not None
        and p99 <= args.echo_limit_ms
        and not step["drops"]
        and not step["errors"]
        and not step["lost_echoes"]
    )


def hard_break(step: dict, args: argparse.Namespace) -> bool:
    p99 = step["echo_p99_ms"]
    failed = step["drops"] + step["errors"] + step["lost_echoes"]
    return p99 is None or p99 > args.hard_limit_ms or failed > 0.05 * step["asked"]


async def ramp(bench: Bench, args: argparse.Namespace) -> dict:
    pids = {"dashboard": bench.dashboard_pid, "engine": bench.engine_pid}
    # One terminal opened and closed first: what every process loads once (pyte, the
    # shell record's queries) is not counted as memory per terminal.
    await bench.grow(1)
    await bench.close_all()
    await asyncio.sleep(2)
    baseline = {name: sample(pid) for name, pid in pids.items()}
    idle_before = {name: sample(pid).cpu for name, pid in pids.items()}
    await asyncio.sleep(IDLE_SECONDS)
    idle_ms_s = (
        sum(sample(pid).cpu - idle_before[n] for n, pid in pids.items()) * 1000 / IDLE_SECONDS
    )
    bench.idle_ms_s = idle_ms_s
    steps: list[dict] = []
    for count in steps_for(args):
        result = await bench.step(count, baseline)
        result["meets_goal"] = met_goal(result, args)
        steps.append(result)
        print(json.dumps(result), flush=True)
        if hard_break(result, args):
            break
    peak = {name: sample(pid) for name, pid in pids.items()}
    await bench.close_all()
    await asyncio.sleep(args.settle)
    end = {name: sample(pid) for name, pid in pids.items()}
    return {
        "steps": steps,
        "idle_cpu_ms_s": round(idle_ms_s, 2),
        "baseline_rss_mb": {n: round(s.rss_kb / 1024, 1) for n, s in baseline.items()},
        "peak_rss_mb": {n: round(s.rss_kb / 1024, 1) for n, s in peak.items()},
        "after_close_rss_mb": {n: round(s.rss_kb / 1024, 1) for n, s in end.items()},
        "after_close_fds": {n: s.fds for n, s in end.items()},
    }


async def settle_idle(bench: Bench) -> tuple[dict[str, Sample], dict[str, float]]:
    """One terminal opened and closed (what each process loads once is not memory per
    terminal), then the RSS baseline and each process's CPU with nothing open (ms/s)."""
    await bench.grow(1)
    await bench.close_all()
    await asyncio.sleep(2)
    baseline = {name: sample(pid) for name, pid in bench.pids.items()}
    await asyncio.sleep(IDLE_SECONDS)
    idle = {
        name: (sample(pid).cpu - baseline[name].cpu) * 1000 / IDLE_SECONDS
        for name, pid in bench.pids.items()
    }
    bench.idle_ms_s = sum(idle.values())
    return baseline, idle


FIGURES = (
    "cpu_ms_per_terminal_s", "dashboard_cpu_ms_per_terminal_s", "engine_cpu_ms_per_terminal_s",
    "program_cpu_ms_per_terminal_s", "dashboard_kb_per_terminal", "engine_kb_per_terminal",
    "frames_s", "output_kb_s", "echo_p50_ms", "echo_p99_ms",
)  # fmt: skip
PHASE = (
    "path", "terminals", "cpu_ms_per_terminal_s", "dashboard_cpu_ms_per_terminal_s",
    "engine_cpu_ms_per_terminal_s", "program_cpu_ms_per_terminal_s", "echo_p99_ms",
    "load_average_1m",
)  # fmt: skip


async def beside_floor(real: Bench, floor: Bench, args: argparse.Namespace) -> dict:
    """The same N terminals on the real path and on the floor, in turns (real, floor,
    floor, real, ...: a drift in the machine's load weighs on both alike)."""
    settled = {"real": await settle_idle(real), "floor": await settle_idle(floor)}
    phases: list[dict] = []
    for turn in range(args.rounds):
        order = (("real", real), ("floor", floor))
        for kind, bench in order if turn % 2 == 0 else order[::-1]:
            result = await bench.step(args.max, settled[kind][0])
            result["path"] = kind
            result["meets_goal"] = met_goal(result, args)
            phases.append(result)
            print(json.dumps(result), flush=True)
            await bench.close_all()
            await asyncio.sleep(2)
    await asyncio.sleep(args.settle)
    end = {name: sample(pid) for name, pid in real.pids.items()}
    return {
        "phases": phases,
        "idle_cpu_ms_s": {
            kind: {n: round(v, 2) for n, v in s[1].items()} for kind, s in settled.items()
        },
        "baseline_rss_mb": {n: round(s.rss_kb / 1024, 1) for n, s in settled["real"][0].items()},
        "after_close_rss_mb": {n: round(s.rss_kb / 1024, 1) for n, s in end.items()},
    }


def mean_of(phases: list[dict], kind: str, key: str) -> float | None:
    values = [p[key] for p in phases if p["path"] == kind and p[key] is not None]
    return round(statistics.fmean(values), 3) if values else None


def floor_summary(run: dict, args: argparse.Namespace) -> dict:
    phases = run["phases"]
    real = {key: mean_of(phases, "real", key) for key in FIGURES}
    floor = {key: mean_of(phases, "floor", key) for key in FIGURES}

    def ratio(key: str) -> float | None:
        return round(real[key] / floor[key], 2) if real[key] and floor[key] else None

    return {
        "bench": "load-floor",
        "terminals": args.max,
        "rounds": args.rounds,
        "hold_s": args.hold,
        "cpu_ms_per_terminal_s": real["cpu_ms_per_terminal_s"],
        "dashboard_cpu_ms": real["dashboard_cpu_ms_per_terminal_s"],
        "engine_cpu_ms": real["engine_cpu_ms_per_terminal_s"],
        "floor_cpu_ms_per_terminal_s": floor["cpu_ms_per_terminal_s"],
        "dashboard_floor_cpu_ms": floor["dashboard_cpu_ms_per_terminal_s"],
        "engine_floor_cpu_ms": floor["engine_cpu_ms_per_terminal_s"],
        "pty_program_cpu_ms": real["program_cpu_ms_per_terminal_s"],
        "dashboard_over_floor": ratio("dashboard_cpu_ms_per_terminal_s"),
        "engine_over_floor": ratio("engine_cpu_ms_per_terminal_s"),
        "frames_s": real["frames_s"],
        "floor_frames_s": floor["frames_s"],
        "echo_p99_ms": real["echo_p99_ms"],
        "floor_echo_p99_ms": floor["echo_p99_ms"],
        "dashboard_kb_per_terminal": real["dashboard_kb_per_terminal"],
        "engine_kb_per_terminal": real["engine_kb_per_terminal"],
        "dashboard_floor_kb_per_terminal": floor["dashboard_kb_per_terminal"],
        "engine_floor_kb_per_terminal": floor["engine_kb_per_terminal"],
        "idle_cpu_ms_s": run["idle_cpu_ms_s"],
        "baseline_rss_mb": run["baseline_rss_mb"],
        "after_close_rss_mb": run["after_close_rss_mb"],
        "phases": [{k: p[k] for k in PHASE} for p in phases],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count(),
        "lines_per_kb": args.lines,
    }


SUMMARY = (
    "terminals", "echo_p50_ms", "echo_p99_ms", "drops", "errors", "dashboard_kb_per_terminal",
    "engine_kb_per_terminal", "cpu_ms_per_terminal_s", "net_cpu_ms_per_terminal_s",
    "dashboard_cpu_ms_per_terminal_s", "engine_cpu_ms_per_terminal_s", "page_rps", "page_p99_ms",
    "frames_s",
)  # fmt: skip


def summary(run: dict, args: argparse.Namespace) -> dict:
    steps = run["steps"]
    last = steps[-1]
    good = [s for s in steps if s["meets_goal"]]
    broke = next((s for s in steps if not s["meets_goal"]), None)
    out = {
        "bench": "load",
        **{key: last[key] for key in SUMMARY},
        "workers": 1,
        "held_goal_at": good[-1]["terminals"] if good else 0,
        "breaks_at": broke["asked"] if broke else None,
        "why": broke["why"] if broke else [],
        "idle_cpu_ms_s": run["idle_cpu_ms_s"],
        "baseline_rss_mb": run["baseline_rss_mb"],
        "peak_rss_mb": run["peak_rss_mb"],
        "after_close_rss_mb": run["after_close_rss_mb"],
        "after_close_fds": run["after_close_fds"],
        "goal": {"echo_p99_ms": args.echo_limit_ms, "drops": 0},
        "steps": [
            {k: s[k] for k in ("asked", "terminals", "echo_p99_ms", "cpu_ms_per_terminal_s")}
            for s in steps
        ],
        "date": time.strftime("%Y-%m-%d"),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count(),
        "lines_per_kb": args.lines,
    }
    return out


# -- setting up -----------------------------------------------------------------------------


def create_sandboxes(engine, count: int, owner: str) -> list[str]:
    with httpx.Client(
        base_url=engine.api_url, headers={"Authorization": f"Bearer {engine.api_key}"}, timeout=120
    ) as http:
        ids = []
        for index in range(count):
            body = {"name": f"load-{index:02d}", "labels": {"sandbar.owner": owner}}
            ids.append(http.post("/sandbox", json=body).raise_for_status().json()["id"])
        return ids


def start_floor(
    work: Path, engine, args: argparse.Namespace, cookie: str
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], Bench]:
    """bench/floor_engine.py and bench/floor_dashboard.py on free loopback ports."""
    port = free_port()
    floor_engine = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "floor_engine.py"), "--port", str(port)], cwd=ROOT
    )
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            break
        if time.monotonic() > deadline or floor_engine.poll() is not None:
            floor_engine.kill()
            raise RuntimeError("the engine's floor did not start")
        time.sleep(0.1)
    os.environ["SANDBAR_FLOOR_ENGINE"] = f"127.0.0.1:{port}"
    web_port = free_port()
    try:
        floor_dashboard = serve_dashboard(
            work / "web", engine, web_port, app="floor_dashboard:application"
        )
    except BaseException:
        floor_engine.kill()
        raise
    floor = Bench(
        args, f"127.0.0.1:{web_port}", cookie, ["floor"], floor_dashboard.pid, floor_engine.pid,
        floor=True,
    )  # fmt: skip
    return floor_engine, floor_dashboard, floor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=200, help="most terminals (default 200)")
    parser.add_argument("--steps", help="terminal counts, comma-separated (default: doubling)")
    parser.add_argument(
        "--lines", type=int, default=16, help="writes per 1 KB (default 16 lines of 64 bytes)"
    )
    parser.add_argument("--hold", type=float, default=15.0, help="seconds of CPU reading a step")
    parser.add_argument("--page-seconds", type=float, default=8.0)
    parser.add_argument("--page-clients", type=int, default=4)
    parser.add_argument("--open-concurrency", type=int, default=8)
    parser.add_argument("--echo-limit-ms", type=float, default=50.0)
    parser.add_argument("--hard-limit-ms", type=float, default=1000.0)
    parser.add_argument("--settle", type=float, default=15.0, help="seconds after closing")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="--max terminals on the real path and on its floor (the same server stacks "
        "relaying canned frames, bench/floor_*.py) in turns, no page loads, no ramp",
    )
    parser.add_argument("--rounds", type=int, default=2, help="with --floor: turns of each")
    args = parser.parse_args()
    if args.floor:
        args.page_seconds = 0.0  # on both paths alike: the floor has no sandboxes page
    if args.max < 1:
        parser.error("--max must be at least 1")

    with scratch("sandbar-bench-load-") as work:
        os.environ["SANDBAR_DATA_DIR"] = str(work / "web")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
        from tests.engine_server import start_engine

        count = math.ceil(args.max / PER_SANDBOX)
        # The engine's own pace (the test fixture's is faster), room for the sandboxes.
        engine = start_engine(
            work / "engine",
            SANDBAR_ENGINE_TICK_SECONDS="5",
            SANDBAR_TELEMETRY_SECONDS="15",
            SANDBAR_QUOTA_CPU=str(max(64, count)),
            SANDBAR_QUOTA_MEMORY=str(max(128, count)),
            SANDBAR_QUOTA_DISK=str(max(256, count * 4)),
        )
        dashboard = floor_engine = floor_dashboard = None
        try:
            import django

            django.setup()
            from django.core.management import call_command
            from django.test import Client

            from dashboard.accounts.models import Role, User

            call_command("migrate", verbosity=0)
            call_command("collectstatic", interactive=False, verbosity=0)  # as `make run` does
            admin = User.objects.create_user("ada", password="x" * 20, role=Role.ADMIN)
            browser = Client()
            browser.force_login(admin)
            cookie = browser.cookies["sessionid"].value
            sandboxes = create_sandboxes(engine, count, "ada")
            port = free_port()
            dashboard = serve_dashboard(work / "web", engine, port)
            assert engine.process is not None
            bench = Bench(
                args, f"127.0.0.1:{port}", cookie, sandboxes, dashboard.pid, engine.process.pid
            )
            print(
                f"{count} sandboxes, dashboard pid {dashboard.pid}, engine pid "
                f"{engine.process.pid}, load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            if args.floor:
                floor_engine, floor_dashboard, floor = start_floor(work, engine, args, cookie)
                print(f"floor: dashboard pid {floor.dashboard_pid}, engine pid {floor.engine_pid}")
                run = asyncio.run(beside_floor(bench, floor, args))
            else:
                run = asyncio.run(ramp(bench, args))
        finally:
            for process in (floor_dashboard, floor_engine, dashboard):
                if process is not None:
                    process.terminate()
                    process.wait(10)
            engine.stop()
    if args.floor:
        out = floor_summary(run, args)
        print(
            f"CPU ms per terminal-second at {args.max} terminals: real "
            f"{out['cpu_ms_per_terminal_s']} (dashboard {out['dashboard_cpu_ms']}, engine "
            f"{out['engine_cpu_ms']}), floor {out['floor_cpu_ms_per_terminal_s']} (dashboard "
            f"{out['dashboard_floor_cpu_ms']}, engine {out['engine_floor_cpu_ms']}), the "
            f"programs in the PTYs {out['pty_program_cpu_ms']}"
        )
        print(json.dumps(out))
        return 0
    out = summary(run, args)
    print(
        f"held the goal (echo p99 <= {args.echo_limit_ms:.0f} ms, no drops) up to "
        f"{out['held_goal_at']} terminals; breaks at {out['breaks_at']}: "
        f"{'; '.join(out['why']) or 'no reason found (the machine is shared)'}"
    )
    print(
        f"RSS MB baseline {out['baseline_rss_mb']}, peak {out['peak_rss_mb']}, "
        f"after closing {out['after_close_rss_mb']}"
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
