"""The limits page: the organization's usage against Daytona's limits, and personal quotas."""

import asyncio
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from dashboard import daytona
from dashboard.accounts.access import limits_access
from dashboard.accounts.actions import active_connection
from dashboard.accounts.models import ConnectionQuota, Role, User
from dashboard.accounts.quotas import Footprint, Usage, members_quotas, usage_of
from dashboard.core.charts import Chart, Line
from dashboard.core.http import htmx_partial
from dashboard.daytona.labels import OWNER_LABEL
from dashboard.limits.history import connection_key, interval
from dashboard.limits.models import UsageSample

# A meter turns amber from here, red from FULL (of the limit).
WARN = 0.75
FULL = 0.9
REFRESH_SECONDS = 10


@dataclass(frozen=True)
class Meter:
    """One thing counted against a limit; `limit` None means no limit."""

    label: str
    used: float
    limit: float | None
    unit: str = ""

    @property
    def fraction(self) -> float | None:
        if self.limit is None:
            return None
        if self.limit <= 0:
            return 1.0 if self.used > 0 else 0.0
        return self.used / self.limit

    @property
    def level(self) -> str:
        """ok, warn or full: the colour and the words beside the bar."""
        fraction = self.fraction
        if fraction is None or fraction < WARN:
            return "ok"
        return "warn" if fraction < FULL else "full"

    @property
    def percent(self) -> int | None:
        fraction = self.fraction
        return None if fraction is None else round(fraction * 100)

    @property
    def low(self) -> float | None:
        return None if self.limit is None else self.limit * WARN

    @property
    def high(self) -> float | None:
        return None if self.limit is None else self.limit * FULL


@dataclass(frozen=True)
class Region:
    name: str
    meters: list[Meter]
    per_sandbox: list[tuple[str, str]]


@dataclass(frozen=True)
class Person:
    user: User
    meters: list[Meter]

    @property
    def limited(self) -> bool:
        return any(m.limit is not None for m in self.meters)


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 2)


def _region(region: daytona.RegionUsage) -> Region:
    meters = [
        Meter("Compute", _number(region.current_cpu_usage), region.total_cpu_quota, "vCPU"),
        Meter("Memory", _number(region.current_memory_usage), region.total_memory_quota, "GiB"),
        Meter("Storage", _number(region.current_disk_usage), region.total_disk_quota, "GiB"),
    ]
    if region.total_gpu_quota or region.current_gpu_usage:
        meters.append(Meter("GPU", region.current_gpu_usage, region.total_gpu_quota))
    per_sandbox = [
        (label, "no limit" if value is None else f"{value} {unit}")
        for label, value, unit in (
            ("vCPU per sandbox", region.max_cpu_per_sandbox, "vCPU"),
            ("Memory per sandbox", region.max_memory_per_sandbox, "GiB"),
            ("Disk per sandbox", region.max_disk_per_sandbox, "GiB"),
        )
    ]
    name = " · ".join(p for p in (region.region_id, region.sandbox_class) if p) or "Default"
    return Region(name, meters, per_sandbox)


def _personal(quota: ConnectionQuota, used: Usage) -> list[Meter]:
    return [
        Meter("Sandboxes", used.sandboxes, quota.quota_sandboxes),
        Meter("Running vCPU", used.cpu, quota.quota_cpu, "vCPU"),
        Meter("Running memory", used.memory, quota.quota_memory, "GiB"),
        Meter("Disk", used.disk, quota.quota_disk, "GiB"),
    ]


async def _organization() -> daytona.Usage:
    organizations = await daytona.list_organizations()
    if not organizations:
        raise daytona.Unavailable("Daytona lists no organization for this API key.")
    return await daytona.usage(organizations[0].id)


async def _engine_host() -> daytona.EngineHost | None:
    """The embedded engine's host checks, for admins; None on any other Daytona."""
    try:
        return await daytona.engine_host()
    except daytona.DaytonaError:
        return None  # the usage above already says when Daytona is unreachable


def _people(user: User) -> list[User]:
    """Whose quotas this person sees: everyone's for an admin, their own for a member."""
    if user.role == Role.ADMIN:
        # Viewers create nothing, so a quota means nothing for them.
        return list(User.objects.filter(is_active=True, role=Role.MEMBER))
    return [user] if user.role == Role.MEMBER else []


async def _sandboxes_of(user: User, people: list[User]) -> list[daytona.Sandbox]:
    """The sandboxes whose owners' usage is shown: a member's own, or everyone's."""
    if not people:
        return []
    if user.role != Role.ADMIN:
        # Daytona filters by label: a member's page reads only their own sandboxes.
        owned = daytona.SandboxQuery(labels={OWNER_LABEL: user.get_username()})
        return await daytona.list_all_sandboxes(owned)
    return await daytona.list_all_sandboxes()


@require_GET
async def limits(request: HttpRequest) -> HttpResponse:
    """Usage against limits: the organization's (Daytona's) and people's (Sandbar's)."""
    user = await request.auser()
    if not limits_access(user).see:
        raise PermissionDenied
    people = await sync_to_async(_people)(user)
    # Quotas on the connection in use, where the sandboxes below are counted.
    quotas = await sync_to_async(members_quotas)(active_connection(request)[0])
    is_admin = user.role == Role.ADMIN
    organization, sandboxes, engine = await asyncio.gather(
        _organization(),
        _sandboxes_of(user, people),
        _engine_host() if is_admin else asyncio.sleep(0),
        return_exceptions=True,
    )
    context: dict = {"refresh": REFRESH_SECONDS, "is_admin": is_admin, "engine": engine}
    for result in (organization, sandboxes, engine):
        if isinstance(result, BaseException) and not isinstance(result, daytona.DaytonaError):
            raise result
    if isinstance(organization, daytona.DaytonaError):
        context["error"] = organization.message
    else:
        context["regions"] = [_region(r) for r in organization.regions]
        context["counts"] = [
            Meter(
                "Snapshots", organization.current_snapshot_usage, organization.total_snapshot_quota
            ),
            Meter("Volumes", organization.current_volume_usage, organization.total_volume_quota),
        ]
    if isinstance(sandboxes, daytona.DaytonaError):
        context["people_error"] = sandboxes.message
    elif people:
        owned: dict[str, list[Footprint]] = defaultdict(list)
        for sandbox in sandboxes:
            owner = sandbox.labels.get(OWNER_LABEL, "")
            owned[owner].append(Footprint(sandbox.state, sandbox.cpu, sandbox.memory, sandbox.disk))
        context["people"] = [
            Person(
                p,
                _personal(quotas.get(p.pk) or ConnectionQuota(), usage_of(owned[p.get_username()])),
            )
            for p in people
        ]
    template = "limits/limits.html#usage" if htmx_partial(request) else "limits/limits.html"
    return await sync_to_async(render)(request, template, context)


# -- usage over time (dashboard/limits/history.py samples it) ---------------------------

HISTORY_RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
HISTORY_POINTS = 288
HISTORY_REFRESH_SECONDS = 60
# (field, quota field, chart key, title, unit)
HISTORY_CHARTS = (
    ("cpu", "cpu_quota", "cpu", "Running vCPU", "vcpu"),
    ("memory", "memory_quota", "memory", "Running memory", "gib"),
    ("disk", "disk_quota", "disk", "Disk", "gib"),
    ("sandboxes", "sandbox_quota", "sandboxes", "Sandboxes", "count"),
)


def _scopes(user: User) -> list[tuple[str, str]]:
    """(scope, label) this person may see: the organization, and members by the role."""
    scopes = [("", "Organization")]
    for person in _people(user):
        scopes.append((person.get_username(), person.get_full_name() or person.get_username()))
    return scopes


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 3) if known else None


def history_charts(
    connection: str, scope: str, since: datetime, until: datetime | None = None
) -> list[Chart]:
    """The four charts of one scope since ``since``, averaged to at most HISTORY_POINTS."""
    fields = [name for name, *_ in HISTORY_CHARTS] + [quota for _, quota, *_ in HISTORY_CHARTS]
    rows = list(
        UsageSample.objects.filter(connection=connection, person=scope, taken_at__gte=since)
        .order_by("taken_at")
        .values_list("taken_at", *fields)
    )
    step = max(1, math.ceil(len(rows) / HISTORY_POINTS))
    buckets = [rows[i : i + step] for i in range(0, len(rows), step)]
    times = tuple(bucket[0][0] for bucket in buckets)
    charts = []
    for index, (_, _, key, title, unit) in enumerate(HISTORY_CHARTS):
        used = tuple(_mean([row[1 + index] for row in bucket]) for bucket in buckets)
        quota_at = 1 + len(HISTORY_CHARTS) + index
        quota = tuple(bucket[-1][quota_at] for bucket in buckets)
        lines = [Line("Used", used)]
        if any(q is not None for q in quota):
            lines.append(Line("Quota", tuple(None if q is None else float(q) for q in quota), True))
        prefix = f"{scope or 'org'}-"
        span = (since, until) if until else None
        charts.append(Chart(prefix + key, title, unit, times, tuple(lines), span))
    return charts


@require_GET
async def limits_history(request: HttpRequest) -> HttpResponse:
    """Usage over the last 24 h or 7 d, of the organization or of one member."""
    user = await request.auser()
    if not limits_access(user).see:
        raise PermissionDenied
    range_key = request.GET.get("range", "24h")
    if range_key not in HISTORY_RANGES:
        range_key = "24h"
    scopes = await sync_to_async(_scopes)(user)
    scope = request.GET.get("scope", "")
    refused = scope not in dict(scopes)
    if refused:
        scope = ""
    now = timezone.now()
    since = now - HISTORY_RANGES[range_key]
    charts = await sync_to_async(history_charts)(connection_key(), scope, since, now)
    context = {
        "charts": charts,
        "empty": all(chart.empty for chart in charts),
        "range": range_key,
        "ranges": list(HISTORY_RANGES),
        "scope": scope,
        "scope_label": dict(scopes)[scope],
        "scopes": scopes,
        "refused": refused,
        "refresh": HISTORY_REFRESH_SECONDS,
        "every": round(interval() / 60, 1),
    }
    if htmx_partial(request):
        return await sync_to_async(render)(request, "limits/_history.html#history", context)
    return await sync_to_async(render)(request, "limits/history.html", context)
