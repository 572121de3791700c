"""Memory the engine's telemetry holds for 100 sandboxes sampled for an hour.

No sandbox runs: the engine's own :class:`Telemetry` is fed readings on a simulated
clock (one tick per 15 s), in a fresh interpreter so the RSS growth is the buffers'.
It goes on to 25 simulated hours to show that the figure stays flat past the 24 h
window. The last line printed is one JSON object.

    python bench/telemetry.py
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.engine.telemetry import DEFAULT_SECONDS, DEFAULT_SLOTS, Reading, Telemetry

SANDBOXES = 100
MIB = 1 << 20


def rss_mb() -> float:
    """The process's resident memory now (from /proc, not the peak)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / MIB


def reading(tick: int, index: int) -> Reading:
    """Plausible, changing counters for one sandbox."""
    return Reading(
        cpu_ns=tick * 1_000_000_000 + index,
        cpu_limit=2.0,
        memory=(200 + index) * MIB + tick,
        memory_limit=1 << 32,
        memory_cache=(20 + index) * MIB,
        disk_used=(1 << 30) + tick * 4096,
        disk_total=10 << 30,
        disk_available=(9 << 30) - tick * 4096,
        rx_bytes=tick * 10_000,
        tx_bytes=tick * 5_000,
    )


def run(hours: float, telemetry: Telemetry, start_tick: int) -> int:
    """Feed ``hours`` of ticks; return the next tick number."""
    ids = [f"sandbox-{i:03d}" for i in range(SANDBOXES)]
    ticks = int(hours * 3600 / DEFAULT_SECONDS)
    for tick in range(start_tick, start_tick + ticks):
        moment = 1_800_000_000.0 + tick * DEFAULT_SECONDS
        telemetry.record(moment, {sid: reading(tick, i) for i, sid in enumerate(ids)})
    return start_tick + ticks


def main() -> int:
    """Measure and print the summary."""
    before = rss_mb()
    telemetry = Telemetry(DEFAULT_SLOTS)
    started = time.perf_counter()
    tick = run(1, telemetry, 0)
    tick_ms = (time.perf_counter() - started) * 1000 / tick
    hour = rss_mb() - before
    run(24, telemetry, tick)
    day = rss_mb() - before
    query_started = time.perf_counter()
    telemetry.query("sandbox-000", 0, 1e12)
    query_ms = (time.perf_counter() - query_started) * 1000
    print(f"{SANDBOXES} sandboxes, 1 h at {DEFAULT_SECONDS:g} s: RSS +{hour:.1f} MB")
    print(f"after 25 h (past the {DEFAULT_SLOTS}-sample window): RSS +{day:.1f} MB")
    print(f"one tick of {SANDBOXES} sandboxes: {tick_ms:.2f} ms; a 24 h query: {query_ms:.1f} ms")
    summary = {
        "metrics_rss_mb": round(hour, 1),
        "metrics_rss_mb_25h": round(day, 1),
        "metrics_tick_ms": round(tick_ms, 2),
        "metrics_query_24h_ms": round(query_ms, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
