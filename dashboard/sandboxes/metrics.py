"""The Metrics tab: a sandbox's CPU, memory, disk and network over 1 h, 6 h or 24 h.

Read from the connection's telemetry endpoint (Daytona's, or the embedded engine's own
sampler). The tab loads this view's fragment and polls it while open; without scripts
the same view is a page of its own. A connection without telemetry answers 404: the tab
says so instead of showing an error.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from dashboard import daytona
from dashboard.core.charts import Chart, Line, aligned
from dashboard.core.http import arender, htmx_partial
from dashboard.sandboxes import actions

RANGES = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(hours=24)}
DEFAULT_RANGE = "1h"
POLL_SECONDS = 15
PREFIX = "daytona.sandbox."


@dataclass(frozen=True)
class Group:
    """One chart: its key, title, unit and (metric, label, is a limit) lines."""

    key: str
    title: str
    unit: str
    lines: tuple[tuple[str, str, bool], ...]


GROUPS = (
    Group("cpu", "CPU", "vcpu", (("cpu.used", "Used", False), ("cpu.limit", "Limit", True))),
    Group(
        "memory",
        "Memory",
        "bytes",
        (("memory.usage", "Used", False), ("memory.limit", "Limit", True)),
    ),
    Group(
        "disk",
        "Disk",
        "bytes",
        (("filesystem.usage", "Used", False), ("filesystem.total", "Size", True)),
    ),
    Group(
        "network",
        "Network",
        "bytes/s",
        (("network.receive", "Received", False), ("network.transmit", "Sent", False)),
    ),
)


def range_of(raw: str | None) -> str:
    """The asked range if it is one of ours, else the default (a link may be old)."""
    return raw if raw in RANGES else DEFAULT_RANGE


def _by_name(series: list[daytona.MetricSeries]) -> dict[str, list[tuple[datetime, float]]]:
    found = {s.name.removeprefix(PREFIX): list(s.points) for s in series}
    # Daytona sends CPU as a percentage of the limit; a chart in vCPUs reads more
    # plainly beside the limit (Daytona's own dashboard converts it the same way).
    limits = dict(found.get("cpu.limit", ()))
    found["cpu.used"] = [
        (t, round(value / 100 * limits[t], 3))
        for t, value in found.get("cpu.utilization", ())
        if t in limits
    ]
    return found


def charts_from(
    series: list[daytona.MetricSeries], span: tuple[datetime, datetime] | None = None
) -> list[Chart]:
    """The four charts, each on its own time axis; a chart with no point is empty."""
    found = _by_name(series)
    charts = []
    for group in GROUPS:
        names = [name for name, _, _ in group.lines]
        times, values = aligned(found, names)
        lines = tuple(
            Line(label, values[name], limit)
            for name, label, limit in group.lines
            if any(v is not None for v in values[name])
        )
        times = times if lines else ()
        charts.append(Chart(group.key, group.title, group.unit, times, lines, span))
    return charts


async def metrics_context(sandbox: daytona.Sandbox, range_key: str) -> dict:
    """What the tab shows: charts, or why there are none."""
    end = datetime.now(UTC)
    context: dict = {
        "sandbox": sandbox,
        "range": range_key,
        "ranges": list(RANGES),
        "poll": POLL_SECONDS,
    }
    start = end - RANGES[range_key]
    try:
        series = await daytona.sandbox_metrics(sandbox.id, start, end)
    except daytona.NotFound:
        context["no_telemetry"] = True
        return context
    except daytona.DaytonaError as error:
        context["error"] = error.message
        return context
    charts = charts_from(series, (start, end))
    context["charts"] = charts
    context["no_samples"] = all(chart.empty for chart in charts)
    return context


@require_GET
async def sandbox_metrics(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """The tab's body (polled), or a page of its own for a browser without scripts."""
    user = await request.auser()
    try:
        sandbox, _ = await actions.find_sandbox(user, sandbox_id)
    except daytona.NotFound:
        raise Http404("This sandbox no longer exists.") from None
    except daytona.DaytonaError as error:
        context = {"sandbox_id": sandbox_id, "error": error.message}
        return await arender(request, "sandboxes/unavailable.html", context, 503)
    context = await metrics_context(sandbox, range_of(request.GET.get("range")))
    if htmx_partial(request):
        return await arender(request, "sandboxes/metrics_tab.html#body", context)
    return await arender(request, "sandboxes/metrics_page.html", context)
