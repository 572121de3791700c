"""What bench/pages.py serves: Sandbar's ASGI application, plus bench-only floor views.

Each floor view goes through the same server, middleware and sign-in check and makes
the same data calls (Daytona through the same client, or the same queries) as its
page, then answers with a count instead of a page: the time it takes is what serving
any page of that data costs before one byte of HTML is drawn.
"""

import asyncio

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import clear_url_caches, path

from dashboard.asgi import application  # sets Django up


async def floor(request: HttpRequest) -> HttpResponse:
    from dashboard import daytona
    from dashboard.sandboxes.forms import SandboxFilterForm

    await request.auser()
    form = SandboxFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponse(status=400)
    found = await daytona.list_sandboxes(form.query())
    return HttpResponse(str(len(found.items)))


async def snapshots_floor(request: HttpRequest) -> HttpResponse:
    from dashboard import daytona
    from dashboard.snapshots.forms import SnapshotFilterForm

    await request.auser()
    params = request.GET.copy()
    params.setdefault("sort", "lastUsedAt")
    form = SnapshotFilterForm(params)
    if not form.is_valid():
        return HttpResponse(status=400)
    page = await daytona.list_snapshots(**form.query())
    return HttpResponse(str(len(page.items)))


async def volumes_floor(request: HttpRequest) -> HttpResponse:
    from dashboard import daytona
    from dashboard.volumes import views

    await request.auser()
    volumes, _ = await asyncio.gather(daytona.list_volumes(), views._mounts())
    return HttpResponse(str(len(volumes)))


async def limits_floor(request: HttpRequest) -> HttpResponse:
    from dashboard.limits import views

    user = await request.auser()
    people = await sync_to_async(views._people)(user)
    _, sandboxes, _ = await asyncio.gather(
        views._organization(), views._sandboxes_of(user, people), views._engine_host()
    )
    return HttpResponse(str(len(sandboxes)))


def audit_floor(request: HttpRequest) -> HttpResponse:
    """The audit page's queries (sync, like the page): filters, one keyset page, the
    suggestions and the chain status, and no template."""
    from dashboard.audit import query, views
    from dashboard.audit.forms import AuditFilterForm

    entries = query.visible_entries(request.user)
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponse(status=400)
    data = form.cleaned_data
    page = query.page_of(query.filtered(entries, form), data["before"], data["after"])
    for field in ("actor_name", "action", "target_kind"):
        query.choices(entries, field)
    views._chain_status(request.user)
    return HttpResponse(str(len(page.entries)))


async def audit_export_floor(request: HttpRequest) -> HttpResponse:
    """The export's reads (the same chunks, by the same query, in a worker thread) streamed
    as an empty line per entry: nothing of the file is encoded."""
    from dashboard.audit import export, query

    user = await request.auser()
    entries = query.visible_entries(user)
    top = await entries.order_by("-seq").values_list("seq", flat=True).afirst() or 0
    read = sync_to_async(export._chunk)

    async def lines():
        yield b"header\n"
        below = top + 1
        # Times as text (SQLite), no cell made formula-safe: that is the file's work.
        while rows := await read(entries, below, True):
            below = rows[-1][0]
            yield b"\n" * len(rows)

    return StreamingHttpResponse(lines(), content_type="text/csv")


def _serve_the_floor() -> None:
    import dashboard.urls

    dashboard.urls.urlpatterns += [
        path("bench-floor/", floor),
        path("bench-floor/snapshots/", snapshots_floor),
        path("bench-floor/volumes/", volumes_floor),
        path("bench-floor/limits/", limits_floor),
        path("bench-floor/audit/", audit_floor),
        path("bench-floor/audit/export/", audit_export_floor),
    ]
    clear_url_caches()


_serve_the_floor()
__all__ = ["application"]
