"""Time-series charts as the pages hand them over: data for static/js/charts.js to draw,
and the same numbers as a table for people who cannot see the drawing.

A chart is a shared time axis and a few lines over it (a limit or quota drawn as its
own line). The page puts :meth:`Chart.payload` in a ``data-chart`` attribute (no inline
script: the CSP forbids it) and renders :meth:`Chart.table_rows` under it.
"""

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

# Units the table and the drawing both know how to write.
UNITS = ("percent", "bytes", "bytes/s", "vcpu", "gib", "count")
TABLE_ROWS = 48


def format_value(value: float | None, unit: str) -> str:
    """A value as people read it: 42.5 %, 1.2 GiB, 3.4 MiB/s, 2 vCPU."""
    if value is None or not math.isfinite(value):
        return "—"
    if unit == "percent":
        return f"{value:.1f} %"
    if unit in ("bytes", "bytes/s"):
        suffix = "/s" if unit == "bytes/s" else ""
        for name, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(value) >= scale:
                return f"{value / scale:.1f}".removesuffix(".0") + f" {name}{suffix}"
        return f"{value:.0f} B{suffix}"
    if unit == "vcpu":
        return f"{value:g} vCPU"
    if unit == "gib":
        return f"{value:g} GiB"
    return f"{value:g}"


@dataclass(frozen=True)
class Line:
    """One line: its label, a value (or None, a gap) per time, and whether it is a limit."""

    label: str
    values: tuple[float | None, ...]
    limit: bool = False


@dataclass(frozen=True)
class Chart:
    """A titled chart: times (UTC) and lines of the same length."""

    key: str
    title: str
    unit: str
    times: tuple[datetime, ...]
    lines: tuple[Line, ...]
    span: tuple[datetime, datetime] | None = None  # the range asked for, drawn whole

    @property
    def empty(self) -> bool:
        return not self.times

    def payload(self) -> str:
        """What charts.js draws: JSON for a data attribute (Django escapes it there)."""
        return json.dumps(
            {
                "key": self.key,
                "title": self.title,
                "unit": self.unit,
                "times": [round(t.timestamp(), 3) for t in self.times],
                "span": [round(t.timestamp(), 3) for t in self.span] if self.span else None,
                "lines": [
                    {"label": line.label, "values": list(line.values), "limit": line.limit}
                    for line in self.lines
                ],
            },
            separators=(",", ":"),
        )

    def latest(self) -> list[tuple[str, str]]:
        """Each line's newest value, for the chart's caption."""
        found = []
        for line in self.lines:
            known = [v for v in line.values if v is not None]
            found.append((line.label, format_value(known[-1] if known else None, self.unit)))
        return found

    def table_rows(self, limit: int = TABLE_ROWS) -> list[tuple[datetime, list[str]]]:
        """At most ``limit`` rows, each the mean of an even share of the points."""
        count = len(self.times)
        step = max(1, math.ceil(count / limit))
        rows = []
        for first in range(0, count, step):
            cells = []
            for line in self.lines:
                known = [v for v in line.values[first : first + step] if v is not None]
                cells.append(format_value(sum(known) / len(known) if known else None, self.unit))
            rows.append((self.times[first], cells))
        return rows

    @property
    def table_step(self) -> int:
        """How many points one table row stands for."""
        return max(1, math.ceil(len(self.times) / TABLE_ROWS))


def aligned(
    series: Mapping[str, Iterable[tuple[datetime, float]]], order: Sequence[str]
) -> tuple[tuple[datetime, ...], dict[str, tuple[float | None, ...]]]:
    """Put several series on one time axis (a gap where a series has no point)."""
    by_name = {name: dict(series.get(name, ())) for name in order}
    times = tuple(sorted({t for points in by_name.values() for t in points}))
    return times, {name: tuple(by_name[name].get(t) for t in times) for name in order}
