"""Per-sandbox metrics in Daytona's telemetry shape, sampled from cgroups by the engine.

Daytona's sandboxes push OpenTelemetry gauges (``daytona.sandbox.cpu.utilization`` and
so on, libs/common-go/pkg/telemetry/metrics.go) and its API serves them at
``GET /sandbox/{sandboxId}/telemetry/metrics?from=&to=`` as
``{series: [{metricName, dataPoints: [{timestamp, value}]}]}``. The engine has no
collector: it reads each running sandbox's cgroup, disk and network counters itself
every ``SANDBAR_TELEMETRY_SECONDS`` (15 s) into ring buffers of ``SANDBAR_TELEMETRY_SLOTS``
samples (5760: 24 h at 15 s). The buffers are preallocated float32 arrays, one slot per
tick for every sandbox known, so memory is flat however long the engine runs.

``daytona.sandbox.memory.cache`` is the SDK's (``sandbox.get_metrics()`` asks for it).
Two series are the engine's own, as Daytona has no network metric:
``daytona.sandbox.network.receive`` and ``...transmit``, bytes per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashboard.engine.config import env_float, env_int
from dashboard.engine.errors import BadRequest
from dashboard.engine.lifecycle import Engine
from dashboard.engine.runtime import RunningSandbox
from dashboard.engine.store import iso
from dashboard.engine.validation import Query

log = logging.getLogger("sandbar.engine")

PREFIX = "daytona.sandbox."
DEFAULT_SECONDS = 15.0
DEFAULT_SLOTS = 24 * 60 * 60 // 15
# A long range is averaged into buckets so one answer stays small (24 h: 2-minute points).
MAX_POINTS = 720
GIB = 1 << 30
NAN = float("nan")

# What is stored per tick; the utilizations Daytona also sends are derived on read.
STORED = (
    "cpu.utilization",
    "cpu.limit",
    "memory.usage",
    "memory.cache",
    "memory.limit",
    "filesystem.usage",
    "filesystem.total",
    "filesystem.available",
    "network.receive",
    "network.transmit",
)
DERIVED = {
    "memory.utilization": ("memory.usage", "memory.limit"),
    "filesystem.utilization": ("filesystem.usage", "filesystem.total"),
}
# The order of the series in an answer: Daytona's, then the engine's network pair.
METRICS = (
    "cpu.utilization",
    "cpu.limit",
    "memory.utilization",
    "memory.usage",
    "memory.cache",
    "memory.limit",
    "filesystem.utilization",
    "filesystem.usage",
    "filesystem.total",
    "filesystem.available",
    "network.receive",
    "network.transmit",
)
METRIC_NAMES = tuple(PREFIX + name for name in METRICS)


@dataclass(frozen=True)
class Reading:
    """What one sandbox's counters said at one moment (None: not readable here)."""

    cpu_ns: int | None
    cpu_limit: float
    memory: int | None
    memory_limit: int
    memory_cache: int | None
    disk_used: int | None
    disk_total: int | None
    disk_available: int | None
    rx_bytes: int | None
    tx_bytes: int | None


# -- reading the host -------------------------------------------------------------------


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cpu_ns(running: RunningSandbox) -> int | None:
    """Cumulative CPU time: v2's cpu.stat has it without the cpu controller, v1's cpuacct."""
    v2 = running.cgroup.v2_dir
    if v2 is not None:
        with contextlib.suppress(OSError):
            for line in (v2 / "cpu.stat").read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == "usage_usec" and value.strip().isdigit():
                    return int(value) * 1000
    cpu = running.cgroup.v1_dirs.get("cpu")
    return None if cpu is None else _read_int(cpu / "cpuacct.usage")


def _memory(running: RunningSandbox) -> int | None:
    """Memory charged to the sandbox, from whichever hierarchy holds its limit."""
    cgroup = running.cgroup
    if cgroup.manager.layout.v2_limits and cgroup.v2_dir is not None:
        return _read_int(cgroup.v2_dir / "memory.current")
    memory = cgroup.v1_dirs.get("memory")
    return None if memory is None else _read_int(memory / "memory.usage_in_bytes")


def _page_cache(running: RunningSandbox) -> int | None:
    """File pages charged to the sandbox (part of its usage that the kernel can reclaim)."""
    cgroup = running.cgroup
    if cgroup.manager.layout.v2_limits and cgroup.v2_dir is not None:
        path, wanted = cgroup.v2_dir / "memory.stat", ("file",)
    elif (memory := cgroup.v1_dirs.get("memory")) is not None:
        path, wanted = memory / "memory.stat", ("total_cache", "cache")
    else:
        return None
    try:
        stats = dict(line.split(" ", 1) for line in path.read_text().splitlines() if " " in line)
    except OSError:
        return None
    for name in wanted:
        if stats.get(name, "").strip().isdigit():
            return int(stats[name])
    return None


def _network(pid: int) -> tuple[int | None, int | None]:
    """Bytes received and sent on the sandbox's own interfaces (its namespace, not lo)."""
    try:
        lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    except OSError:
        return None, None
    rx = tx = 0
    for line in lines:
        name, _, counters = line.partition(":")
        fields = counters.split()
        if name.strip() == "lo" or len(fields) < 9:
            continue
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx


def read_sandbox(running: RunningSandbox) -> Reading:
    """One sandbox's counters now (file reads and a statvfs: run it off the event loop)."""
    used = total = available = None
    with contextlib.suppress(OSError):
        disk = os.statvfs(running.disk.mount_point)
        total = disk.f_blocks * disk.f_frsize
        used = total - disk.f_bfree * disk.f_frsize
        available = disk.f_bavail * disk.f_frsize
    rx, tx = _network(running.init_pid)
    return Reading(
        cpu_ns=_cpu_ns(running),
        cpu_limit=float(running.spec.cpu),
        memory=_memory(running),
        memory_limit=running.spec.memory * GIB,
        memory_cache=_page_cache(running),
        disk_used=used,
        disk_total=total,
        disk_available=available,
        rx_bytes=rx,
        tx_bytes=tx,
    )


# -- the ring buffers -------------------------------------------------------------------


def _rate(now: int | None, before: int | None, seconds: float) -> float:
    if now is None or before is None or seconds <= 0 or now < before:
        return NAN  # a first sample, or a counter that went back (a restart)
    return (now - before) / seconds


def _value(value: float | None) -> float:
    return NAN if value is None else float(value)


class Telemetry:
    """Ring buffers of every sandbox's samples, and the last counters to make rates of."""

    def __init__(self, slots: int = DEFAULT_SLOTS) -> None:
        self.slots = slots
        self.times = array("d", [NAN]) * slots  # unix seconds per slot
        self.head = 0  # the slot the next tick writes
        self.count = 0
        self.series: dict[str, dict[str, array[float]]] = {}
        self._last: dict[str, tuple[float, Reading]] = {}
        self._seen: dict[str, float] = {}  # sandbox -> its newest sample's time

    def _columns(self, sandbox_id: str) -> dict[str, array[float]]:
        columns = self.series.get(sandbox_id)
        if columns is None:
            empty = array("f", [NAN]) * self.slots
            columns = {name: array("f", empty) for name in STORED}
            self.series[sandbox_id] = columns
        return columns

    def record(self, moment: float, readings: dict[str, Reading]) -> None:
        """Write one tick: every sandbox read, and a gap for every other known one."""
        slot = self.head
        self.times[slot] = moment
        for sandbox_id in readings:
            self._columns(sandbox_id)
        for sandbox_id, columns in self.series.items():
            reading = readings.get(sandbox_id)
            if reading is None:
                self._last.pop(sandbox_id, None)
                for column in columns.values():
                    column[slot] = NAN
                continue
            values = self._values(sandbox_id, moment, reading)
            for name, column in columns.items():
                column[slot] = values[name]
        self.head = (slot + 1) % self.slots
        self.count = min(self.count + 1, self.slots)
        self._seen.update(dict.fromkeys(readings, moment))
        self._drop_unseen()

    def _drop_unseen(self) -> None:
        """Forget sandboxes whose every sample has left the window (stopped for that long):
        memory then follows the sandboxes that ran within the window, not all there are."""
        if self.count < self.slots:
            return
        oldest = self.times[self.head]
        for sandbox_id in [s for s, seen in self._seen.items() if seen < oldest]:
            self.series.pop(sandbox_id, None)
            self._last.pop(sandbox_id, None)
            del self._seen[sandbox_id]

    def _values(self, sandbox_id: str, moment: float, reading: Reading) -> dict[str, float]:
        previous = self._last.get(sandbox_id)
        self._last[sandbox_id] = (moment, reading)
        seconds = moment - previous[0] if previous else 0.0
        before = previous[1] if previous else None
        cpu_seconds = _rate(reading.cpu_ns, before and before.cpu_ns, seconds) / 1e9
        return {
            "cpu.utilization": cpu_seconds / reading.cpu_limit * 100 if reading.cpu_limit else NAN,
            "cpu.limit": reading.cpu_limit,
            "memory.usage": _value(reading.memory),
            "memory.cache": _value(reading.memory_cache),
            "memory.limit": float(reading.memory_limit),
            "filesystem.usage": _value(reading.disk_used),
            "filesystem.total": _value(reading.disk_total),
            "filesystem.available": _value(reading.disk_available),
            "network.receive": _rate(reading.rx_bytes, before and before.rx_bytes, seconds),
            "network.transmit": _rate(reading.tx_bytes, before and before.tx_bytes, seconds),
        }

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the buffers of sandboxes that no longer exist."""
        wanted = set(keep)
        for sandbox_id in [s for s in self.series if s not in wanted]:
            del self.series[sandbox_id]
            self._last.pop(sandbox_id, None)
            self._seen.pop(sandbox_id, None)

    def _slots_between(self, start: float, end: float) -> list[int]:
        """Slots whose tick falls in [start, end], oldest first."""
        first = (self.head - self.count) % self.slots
        found = []
        for offset in range(self.count):
            slot = (first + offset) % self.slots
            if start <= self.times[slot] <= end:
                found.append(slot)
        return found

    def query(
        self, sandbox_id: str, start: float, end: float, names: Iterable[str] = METRICS
    ) -> list[dict[str, Any]]:
        """Daytona's ``series`` for one sandbox: averaged buckets, empty ones left out."""
        columns = self.series.get(sandbox_id)
        slots = self._slots_between(start, end) if columns else []
        if not columns or not slots:
            return []
        step = max(1, math.ceil(len(slots) / MAX_POINTS))
        starts = range(0, len(slots), step)
        stamps = [iso(datetime.fromtimestamp(self.times[slots[i]], UTC)) for i in starts]
        series = []
        for name in names:
            values = self._column(columns, name, slots)
            points = []
            for stamp, first in zip(stamps, starts, strict=True):
                known = [v for v in values[first : first + step] if v == v]  # NaN: no sample
                if known:
                    points.append({"timestamp": stamp, "value": round(sum(known) / len(known), 3)})
            if points:
                series.append({"metricName": PREFIX + name, "dataPoints": points})
        return series

    @staticmethod
    def _column(columns: dict[str, array[float]], name: str, slots: list[int]) -> list[float]:
        if name not in DERIVED:
            column = columns[name]
            return [column[slot] for slot in slots]
        used, total = (columns[part] for part in DERIVED[name])
        return [used[s] / total[s] * 100 if total[s] > 0 else NAN for s in slots]


# -- the sampler ------------------------------------------------------------------------


class Sampler:
    """Samples every running sandbox at a steady interval, off the event loop."""

    def __init__(
        self,
        engine: Engine,
        telemetry: Telemetry,
        interval: float,
        read: Callable[[RunningSandbox], Reading] = read_sandbox,
    ) -> None:
        self.engine = engine
        self.telemetry = telemetry
        self.interval = interval
        self.read = read
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin sampling (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="engine-telemetry")

    async def stop(self) -> None:
        """Stop sampling and wait for the current tick to end."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            try:
                await self.tick()
            except Exception:  # a failed tick must not end sampling
                log.exception("telemetry tick failed")
            # Steady ticks: the next one is due an interval after the last was due,
            # however long reading took; ticks missed under load are skipped, not bunched.
            next_tick += self.interval
            now = loop.time()
            if next_tick < now:
                next_tick = now + self.interval - (now - next_tick) % self.interval
            await asyncio.sleep(next_tick - now)

    async def tick(self) -> None:
        """Read every running sandbox once and record the tick."""
        running = dict(self.engine.runtime.running)
        readings = await asyncio.to_thread(self._read_all, running)
        self.telemetry.record(time.time(), readings)
        known = [s for s in self.telemetry.series if s not in running]
        if known:
            gone = [s for s in known if self.engine.store.get(s) is None]
            if gone:
                self.telemetry.forget(s for s in self.telemetry.series if s not in gone)

    def _read_all(self, running: dict[str, RunningSandbox]) -> dict[str, Reading]:
        readings = {}
        for sandbox_id, sandbox in running.items():
            if sandbox.closed:
                continue
            try:
                readings[sandbox_id] = self.read(sandbox)
            except Exception:  # one unreadable sandbox must not cost the others their tick
                log.exception("telemetry: reading sandbox %s failed", sandbox_id)
        return readings


# -- the route --------------------------------------------------------------------------


def parse_time(query: Query, key: str) -> float:
    """A required ISO 8601 date-time query parameter, as unix seconds (naive means UTC)."""
    raw = query.string(key)
    if not raw:
        raise BadRequest(f"{key} must be a valid ISO 8601 date string")
    # An unencoded "+01:00" in a query string arrives as " 01:00" (curl users write it so).
    raw = re.sub(r" (\d\d:?\d\d)$", r"+\1", raw)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{key} must be a valid ISO 8601 date string") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


async def get_metrics(request: Request) -> Response:
    """GET /sandbox/{sandboxId}/telemetry/metrics?from=&to=[&metricNames=]."""
    query = Query(request.query_params, {"from", "to", "metricNames", "metricNames[]"})
    start, end = parse_time(query, "from"), parse_time(query, "to")
    if start > end:
        raise BadRequest("from must not be after to")
    # Names the engine does not keep are left out, as Daytona leaves out names it has no
    # rows for (the SDK asks for a fixed list).
    names = query.strings("metricNames")
    wanted = [
        m for m, full in zip(METRICS, METRIC_NAMES, strict=True) if not names or full in names
    ]
    engine = request.app.state.engine
    record = engine.find(request.path_params["sandboxId"])
    telemetry: Telemetry = request.app.state.telemetry
    return JSONResponse({"series": telemetry.query(record.id, start, end, wanted)})


def routes() -> list[BaseRoute]:
    """The telemetry route, mounted at /api."""
    return [Route("/sandbox/{sandboxId}/telemetry/metrics", get_metrics, methods=["GET"])]


class SamplerLifespan:
    """ASGI middleware: start sampling once the app has started, stop it on shutdown."""

    def __init__(self, app: ASGIApp, sampler: Sampler) -> None:
        self.app = app
        self.sampler = sampler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def on_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                self.sampler.start()
            await send(message)

        async def on_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.sampler.stop()
            return message

        await self.app(scope, on_receive, on_send)


def load_interval() -> float:
    """``SANDBAR_TELEMETRY_SECONDS``: seconds between samples (15; tests use less)."""
    return env_float("SANDBAR_TELEMETRY_SECONDS", DEFAULT_SECONDS, minimum=0.05)


def install(app: Starlette, engine: Engine) -> None:
    """Keep telemetry for ``app``'s engine: its buffers, and a sampler for the app's life."""
    slots = env_int("SANDBAR_TELEMETRY_SLOTS", DEFAULT_SLOTS, minimum=2, maximum=1_000_000)
    app.state.telemetry = Telemetry(slots)
    app.add_middleware(
        SamplerLifespan, sampler=Sampler(engine, app.state.telemetry, load_interval())
    )


__all__ = ["METRIC_NAMES", "Reading", "Sampler", "Telemetry", "install", "read_sandbox", "routes"]
