"""Per-sandbox metrics: Daytona's telemetry endpoint, served by the engine's own sampler.

The session engine samples every second (tests/engine_server.py); a sandbox is made to
burn CPU, hold memory and write to its disk, and the series must show it.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import httpx
import pytest

from dashboard.engine.telemetry import MAX_POINTS, METRIC_NAMES, Reading, Telemetry
from tests.engine.conftest import create, run

DAYTONA_METRICS = {
    "daytona.sandbox.memory.cache",
    "daytona.sandbox.cpu.utilization",
    "daytona.sandbox.cpu.limit",
    "daytona.sandbox.memory.utilization",
    "daytona.sandbox.memory.usage",
    "daytona.sandbox.memory.limit",
    "daytona.sandbox.filesystem.utilization",
    "daytona.sandbox.filesystem.usage",
    "daytona.sandbox.filesystem.total",
    "daytona.sandbox.filesystem.available",
}
MIB = 1 << 20


def _window(minutes: int = 10) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "from": (now - timedelta(minutes=minutes)).isoformat(),
        "to": (now + timedelta(minutes=1)).isoformat(),
    }


def _series(api: httpx.Client, sandbox_id: str, **params: Any) -> dict[str, list[dict]]:
    response = api.get(f"/sandbox/{sandbox_id}/telemetry/metrics", params=params or _window())
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"series"}
    return {s["metricName"]: s["dataPoints"] for s in body["series"]}


def _values(series: dict[str, list[dict]], name: str) -> list[float]:
    return [point["value"] for point in series.get(name, [])]


def _wait_for(api: httpx.Client, sandbox_id: str, check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    series = _series(api, sandbox_id)
    while not check(series):
        last = {name: points[-3:] for name, points in series.items()}
        assert time.monotonic() < deadline, f"metrics never showed it: {last}"
        time.sleep(0.5)
        series = _series(api, sandbox_id)
    return series


@pytest.fixture(scope="module")
def busy(api: httpx.Client, toolbox: httpx.Client) -> dict[str, Any]:
    """A started 1-vCPU sandbox that has been sampled idle at least twice."""
    sandbox = create(api, cpu=1, memory=1, disk=3)
    _wait_for(api, sandbox["id"], lambda s: len(_values(s, "daytona.sandbox.memory.usage")) >= 2)
    yield sandbox
    api.delete(f"/sandbox/{sandbox['id']}")


def test_a_busy_sandbox_shows_its_cpu_against_its_one_core(api, toolbox, busy) -> None:
    cpu = "daytona.sandbox.cpu.utilization"
    idle = max(_values(_series(api, busy["id"]), cpu), default=0)
    assert idle < 2  # a sandbox doing nothing
    run(toolbox, busy["id"], "timeout 4 sh -c 'while :; do :; done'", timeout=10)
    # A loop takes a whole core on a quiet host; a shared test machine (load 10) gives it
    # far less, still hundreds of times an idle sandbox's.
    series = _wait_for(api, busy["id"], lambda s: max(_values(s, cpu), default=0) > 3)
    assert max(_values(series, "daytona.sandbox.cpu.utilization")) <= 110  # % of its 1 vCPU
    assert set(_values(series, "daytona.sandbox.cpu.limit")) == {1.0}


def test_memory_held_in_the_sandbox_shows_in_its_usage(api, toolbox, busy) -> None:
    before = max(_values(_series(api, busy["id"]), "daytona.sandbox.memory.usage"))
    # 200 MiB held by a process for a few seconds (a Python bytearray is touched memory).
    command = "python -c 'import time; b = bytearray(200 << 20); time.sleep(4)'"
    run(toolbox, busy["id"], command, timeout=15)
    series = _wait_for(
        api,
        busy["id"],
        lambda s: max(_values(s, "daytona.sandbox.memory.usage")) > before + 150 * MIB,
    )
    assert set(_values(series, "daytona.sandbox.memory.limit")) == {float(1 << 30)}
    utilization = _values(series, "daytona.sandbox.memory.utilization")
    assert max(utilization) > 150 * MIB / (1 << 30) * 100


def test_a_file_written_to_the_disk_shows_in_filesystem_usage(api, toolbox, busy) -> None:
    before = _values(_series(api, busy["id"]), "daytona.sandbox.filesystem.usage")[-1]
    run(toolbox, busy["id"], "dd if=/dev/urandom of=/home/daytona/blob bs=1M count=64 && sync")
    series = _wait_for(
        api,
        busy["id"],
        lambda s: _values(s, "daytona.sandbox.filesystem.usage")[-1] > before + 60 * MIB,
    )
    total = _values(series, "daytona.sandbox.filesystem.total")[-1]
    available = _values(series, "daytona.sandbox.filesystem.available")[-1]
    assert 2.5 * (1 << 30) < total <= 3 * (1 << 30)  # the sandbox's own 3 GiB disk
    assert 0 < available < total
    run(toolbox, busy["id"], "rm /home/daytona/blob")


def test_every_daytona_metric_and_the_network_pair_are_served(api, busy) -> None:
    series = _series(api, busy["id"])
    assert set(series) >= DAYTONA_METRICS
    for name in ("daytona.sandbox.network.receive", "daytona.sandbox.network.transmit"):
        assert name in series
        assert all(v >= 0 and math.isfinite(v) for v in _values(series, name))
    stamps = [p["timestamp"] for p in series["daytona.sandbox.memory.usage"]]
    assert stamps == sorted(stamps)
    assert all(s.endswith("Z") for s in stamps)


def test_metric_names_narrow_the_answer_and_unknown_ones_are_left_out(api, busy) -> None:
    params = {**_window(), "metricNames": ["daytona.sandbox.cpu.limit", "no.such.metric"]}
    assert set(_series(api, busy["id"], **params)) == {"daytona.sandbox.cpu.limit"}


def test_an_offset_whose_plus_was_not_encoded_is_still_read(api, busy) -> None:
    now = datetime.now(UTC)
    raw = f"/sandbox/{busy['id']}/telemetry/metrics?from={(now - timedelta(hours=1)).isoformat()}"
    raw += f"&to={(now + timedelta(minutes=1)).isoformat()}"  # "+00:00" sent as is
    response = api.get(raw)
    assert response.status_code == 200, response.text
    assert response.json()["series"]


def test_the_official_sdk_reads_the_metrics_unmodified(daytona, busy) -> None:
    sandbox = daytona.get(busy["id"])
    samples = sandbox.get_metrics(start=datetime.now(UTC) - timedelta(minutes=10))
    assert len(samples) >= 2
    latest = samples[-1]
    assert latest.cpu_count == 1
    assert latest.mem_total == 1 << 30
    assert 0 < latest.mem_used < 1 << 30
    assert 0 <= latest.mem_cache <= latest.mem_used
    assert 2.5 * (1 << 30) < latest.disk_total <= 3 * (1 << 30)
    assert [s.timestamp for s in samples] == sorted(s.timestamp for s in samples)


def test_a_range_before_the_sandbox_existed_is_empty(api, busy) -> None:
    params = {"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"}
    assert _series(api, busy["id"], **params) == {}


def test_a_stopped_sandbox_keeps_its_history_but_gets_no_new_points(api, toolbox) -> None:
    sandbox = create(api)
    try:
        _wait_for(api, sandbox["id"], lambda s: len(_values(s, "daytona.sandbox.cpu.limit")) >= 2)
        assert api.post(f"/sandbox/{sandbox['id']}/stop").status_code == 200
        count = len(_values(_series(api, sandbox["id"]), "daytona.sandbox.cpu.limit"))
        time.sleep(2.5)  # two ticks or more
        after = _values(_series(api, sandbox["id"]), "daytona.sandbox.cpu.limit")
        assert count <= len(after) <= count + 1  # at most a tick in flight at the stop
    finally:
        api.delete(f"/sandbox/{sandbox['id']}")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "from must be a valid ISO 8601 date string"),
        ({"from": "2026-01-01T00:00:00Z"}, "to must be a valid ISO 8601 date string"),
        ({"from": "yesterday", "to": "2026-01-01T00:00:00Z"}, "from must be a valid"),
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from must not be after"),
        (
            {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "page": "2"},
            "query parameter page is not supported",
        ),
    ],
)
def test_bad_from_or_to_is_answered_400(api, busy, params, message) -> None:
    response = api.get(f"/sandbox/{busy['id']}/telemetry/metrics", params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["statusCode"] == 400
    assert message in body["message"]


def test_an_unknown_sandbox_is_404(api) -> None:
    response = api.get("/sandbox/no-such-sandbox/telemetry/metrics", params=_window())
    assert response.status_code == 404
    assert "not found" in response.json()["message"]


def test_the_endpoint_needs_the_api_key(engine) -> None:
    response = httpx.get(f"{engine.api_url}/sandbox/x/telemetry/metrics", params=_window())
    assert response.status_code == 401


# -- the ring buffers, on a simulated clock ------------------------------------------------


def _reading(cpu_s: float, memory: int = 100 * MIB) -> Reading:
    return Reading(
        cpu_ns=int(cpu_s * 1e9),
        cpu_limit=2.0,
        memory=memory,
        memory_limit=1 << 30,
        memory_cache=MIB,
        disk_used=10,
        disk_total=100,
        disk_available=90,
        rx_bytes=int(cpu_s * 1000),
        tx_bytes=0,
    )


def test_the_buffers_stay_the_same_size_past_their_window() -> None:
    telemetry = Telemetry(slots=8)
    for tick in range(20):
        telemetry.record(1000.0 + tick * 15, {"a": _reading(tick * 15.0)})
    columns = telemetry.series["a"]
    assert {len(column) for column in columns.values()} == {8}
    points = telemetry.query("a", 0, 10_000, ["cpu.limit"])[0]["dataPoints"]
    assert len(points) == 8  # only the newest window is left
    assert points[0]["timestamp"] == "1970-01-01T00:19:40.000Z"  # tick 12: 1000 + 12 x 15 s


def test_cpu_is_a_percentage_of_the_limit_and_rates_are_per_second() -> None:
    telemetry = Telemetry(slots=10)
    telemetry.record(0.0, {"a": _reading(0.0)})
    telemetry.record(10.0, {"a": _reading(5.0)})  # 5 CPU-seconds in 10 s on 2 vCPUs
    series = {s["metricName"]: s["dataPoints"] for s in telemetry.query("a", 0, 10)}
    assert [p["value"] for p in series["daytona.sandbox.cpu.utilization"]] == [25.0]
    assert [p["value"] for p in series["daytona.sandbox.network.receive"]] == [500.0]
    assert [p["value"] for p in series["daytona.sandbox.filesystem.utilization"]] == [10.0, 10.0]


def test_a_long_range_is_averaged_into_at_most_max_points() -> None:
    telemetry = Telemetry(slots=MAX_POINTS * 3)
    for tick in range(MAX_POINTS * 3):
        telemetry.record(float(tick), {"a": _reading(0.0, memory=tick)})
    points = telemetry.query("a", 0, 1e9, ["memory.usage"])[0]["dataPoints"]
    assert len(points) == MAX_POINTS
    assert points[0]["value"] == 1.0  # the mean of 0, 1, 2


def test_a_sandbox_not_read_in_a_tick_gets_a_gap_and_a_deleted_one_is_forgotten() -> None:
    telemetry = Telemetry(slots=10)
    telemetry.record(0.0, {"a": _reading(0.0), "b": _reading(0.0)})
    telemetry.record(1.0, {"a": _reading(1.0)})
    assert len(telemetry.query("b", 0, 10, ["cpu.limit"])[0]["dataPoints"]) == 1
    telemetry.forget(["a"])
    assert telemetry.query("b", 0, 10) == []
    assert set(telemetry.series) == {"a"}


def test_the_served_names_are_daytonas_and_the_engines_network_pair() -> None:
    assert set(METRIC_NAMES) == DAYTONA_METRICS | {
        "daytona.sandbox.network.receive",
        "daytona.sandbox.network.transmit",
    }


def test_a_sandbox_not_sampled_for_a_whole_window_is_forgotten() -> None:
    telemetry = Telemetry(slots=4)
    telemetry.record(0.0, {"a": _reading(0.0), "b": _reading(0.0)})
    for tick in range(1, 4):
        telemetry.record(float(tick), {"a": _reading(tick)})
    assert set(telemetry.series) == {"a", "b"}  # b's one sample is still in the window
    telemetry.record(4.0, {"a": _reading(4.0)})  # it has been overwritten now
    assert set(telemetry.series) == {"a"}


def test_the_sampler_ticks_at_its_interval(api, busy) -> None:
    limit = "daytona.sandbox.cpu.limit"
    series = _wait_for(api, busy["id"], lambda s: len(_values(s, limit)) >= 5)
    stamps = [point["timestamp"] for point in series[limit]]
    moments = [datetime.fromisoformat(s) for s in stamps[-10:]]
    gaps = sorted((b - a).total_seconds() for a, b in pairwise(moments))
    assert len(gaps) >= 3
    assert 0.8 <= gaps[len(gaps) // 2] <= 1.5  # the median, at 1 s (a loaded host adds a little)
