"""A sandbox's metrics from Daytona's telemetry API (the embedded engine serves it too).

``GET /sandbox/{id}/telemetry/metrics?from=&to=`` answers
``{series: [{metricName, dataPoints: [{timestamp, value}]}]}``. A Daytona without
telemetry (an older server, or analytics turned off) answers 404: callers show that
as "no metrics here", not as an error.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from dashboard.daytona.client import Unavailable, request


@dataclass(frozen=True)
class MetricSeries:
    """One metric's points, oldest first: (time, value) with the time in UTC."""

    name: str
    points: tuple[tuple[datetime, float], ...]


def _time(raw: object) -> datetime:
    """Daytona sends ISO 8601; ClickHouse's own "YYYY-MM-DD hh:mm:ss" is UTC."""
    if not isinstance(raw, str):
        raise ValueError("a timestamp must be a string")
    moment = datetime.fromisoformat(raw)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _series(item: Any) -> MetricSeries:
    if not isinstance(item, dict) or not isinstance(item.get("metricName"), str):
        raise ValueError("a series must be an object with a metricName")
    points = []
    for point in item.get("dataPoints") or ():
        value = point.get("value") if isinstance(point, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue  # Daytona leaves a gap as a null value
        points.append((_time(point.get("timestamp")), float(value)))
    points.sort(key=lambda pair: pair[0])
    return MetricSeries(item["metricName"], tuple(points))


async def sandbox_metrics(
    sandbox_id: str, start: datetime, end: datetime, names: tuple[str, ...] = ()
) -> list[MetricSeries]:
    """Every series Daytona has for the sandbox between ``start`` and ``end``."""
    params = [("from", start.astimezone(UTC).isoformat()), ("to", end.astimezone(UTC).isoformat())]
    params += [("metricNames", name) for name in names]
    path = f"/sandbox/{quote(sandbox_id, safe='')}/telemetry/metrics"
    data = await request("GET", path, params=params)
    try:
        if not isinstance(data, dict) or not isinstance(data.get("series"), list):
            raise ValueError("no series list")
        return [_series(item) for item in data["series"]]
    except (ValueError, TypeError, AttributeError) as error:
        raise Unavailable(f"Daytona sent malformed metrics ({error}).") from None
