"""The chart data the Metrics tab and the limits page share (dashboard/core/charts.py)."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from dashboard.core.charts import Chart, Line, aligned, format_value

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (2 * 2**30, "bytes", "2 GiB"),
        (1.5 * 2**20, "bytes", "1.5 MiB"),
        (512, "bytes", "512 B"),
        (3 * 2**10, "bytes/s", "3 KiB/s"),
        (42.25, "percent", "42.2 %"),
        (0.5, "vcpu", "0.5 vCPU"),
        (16.0, "gib", "16 GiB"),
        (3, "count", "3"),
        (None, "bytes", "—"),
        (float("nan"), "percent", "—"),
    ],
)
def test_values_are_written_as_people_read_them(value, unit, text) -> None:
    assert format_value(value, unit) == text


def test_series_with_different_times_share_one_axis_with_gaps() -> None:
    a = [(T0, 1.0), (T0 + timedelta(seconds=15), 2.0)]
    b = [(T0 + timedelta(seconds=15), 5.0), (T0 + timedelta(seconds=30), 6.0)]
    times, values = aligned({"a": a, "b": b}, ["a", "b", "missing"])
    assert times == (T0, T0 + timedelta(seconds=15), T0 + timedelta(seconds=30))
    assert values == {"a": (1.0, 2.0, None), "b": (None, 5.0, 6.0), "missing": (None,) * 3}


def test_the_table_averages_long_series_into_at_most_48_rows() -> None:
    times = tuple(T0 + timedelta(minutes=i) for i in range(100))
    chart = Chart("k", "K", "count", times, (Line("Used", tuple(float(i) for i in range(100))),))
    rows = chart.table_rows()
    assert chart.table_step == 3 and len(rows) == 34
    assert rows[0] == (T0, ["1"])  # the mean of 0, 1, 2
    assert chart.latest() == [("Used", "99")]


def test_the_payload_carries_gaps_limits_and_the_span() -> None:
    chart = Chart(
        "memory", "Memory", "bytes", (T0,), (Line("Used", (None,)), Line("Limit", (1.0,), True)),
        span=(T0 - timedelta(hours=1), T0),
    )  # fmt: skip
    payload = json.loads(chart.payload())
    assert payload["lines"][0]["values"] == [None]
    assert payload["lines"][1]["limit"] is True
    assert payload["span"][1] - payload["span"][0] == 3600
    assert payload["times"] == [T0.timestamp()]
