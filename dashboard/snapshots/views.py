"""The snapshots area: the list, one snapshot with its build log, create, and actions.

Views are async: a slow Daytona holds no thread while a call waits for its timeout.
"""

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from dashboard import daytona
from dashboard.accounts.access import Access, snapshot_access
from dashboard.core.bulk import BulkResult, bulk_ids, bulk_report
from dashboard.core.http import arender, htmx_partial, lookup_failed, status_for, toast
from dashboard.core.kept import KeptRows
from dashboard.core.templatetags.sandbar import state_tone
from dashboard.core.widgets import drawn_inputs
from dashboard.daytona import streams
from dashboard.daytona.snapshots import FINAL_STATES
from dashboard.snapshots import actions
from dashboard.snapshots.forms import (
    DAYTONA_KINDS,
    ENGINE_KINDS,
    ENGINE_KINDS_NO_IMAGES,
    SOURCE_KINDS,
    CreateSnapshotForm,
    SnapshotFilterForm,
)

LABELS = {
    "activate": ("Activate", "Activated"),
    "deactivate": ("Deactivate", "Deactivated"),
    "delete": ("Delete", "Deleted"),
}
# An HTMX poll stops when it gets this status (htmx's "stop polling").
STOP_POLLING = 286
BULK_VERBS = [(verb, LABELS[verb][0]) for verb in actions.VERBS]
# Tells the list to reload after a bulk action.
CHANGED_EVENT = "snapshots-changed"
# Build-log lines per batch the log viewer draws at once.
LINES_PER_BATCH = 2000
# Lines the viewer keeps in the page (MAX_LINES in static/js/logs.js).
VIEWER_LINES = 5000


@dataclass(frozen=True)
class Row:
    """A snapshot as one person sees it: what they may do with it now."""

    snapshot: daytona.Snapshot
    can_act: bool
    verbs: tuple[str, ...]
    problem: str = ""


def row_for(access: Access, snapshot: daytona.Snapshot, problem: str = "") -> Row:
    verbs = tuple(v for v in actions.VERBS if actions.applies(v, snapshot))
    return Row(snapshot, access.act, verbs, problem)


# Drawn rows kept in this process: a page of the list loaded again mostly shows the
# same rows, and through the template engine a row costs about 2 ms of CPU, ten times
# the Daytona call behind a 100-row page.
ROWS = KeptRows(
    "snapshots/_row.html", "snapshots/_actions.html", "_state_badge.html", times=("created", "last")
)


def _times(row: Row) -> dict[str, datetime | None]:
    return {"created": row.snapshot.created_at, "last": row.snapshot.last_used_at}


def rows_html(rows: Sequence[Row]) -> list[SafeString]:
    """Each row's HTML: kept from an earlier page when nothing it shows changed."""
    return ROWS.html(rows, _times)


FILTER_FIELDS = ("q", "sort", "order", "limit", "refresh")


def _changing(snapshot: daytona.Snapshot) -> bool:
    return state_tone(snapshot.state) == "changing"


def _links(params: QueryDict, page: daytona.SnapshotPage, form: SnapshotFilterForm) -> dict:
    """The pager's links and, for each sortable column, the link that sorts by it."""
    current = form.query()

    def link(**changes: str | int) -> str:
        query = params.copy()
        for key, value in changes.items():
            query[key] = str(value)
        return query.urlencode()

    sorts = {}
    for key in ("name", "state", "createdAt", "lastUsedAt"):
        active = current["sort"] == key
        default = "asc" if key in ("name", "state") else "desc"
        flipped = "asc" if current["order"] == "desc" else "desc"
        sorts[key] = {
            "url": link(sort=key, order=flipped if active else default, page=1),
            "active": active,
            "aria": ("ascending" if current["order"] == "asc" else "descending")
            if active
            else "none",
        }
    number = current["page"]
    return {
        "sorts": sorts,
        "pager": {
            "number": number,
            "pages": max(page.total_pages, 1),
            "previous": link(page=number - 1) if number > 1 else None,
            "next": link(page=number + 1) if number < page.total_pages else None,
        },
    }


@require_GET
async def snapshot_list(request: HttpRequest) -> HttpResponse:
    """The organization's snapshots, searched, sorted and paged as the URL says."""
    access = snapshot_access(await request.auser())
    if not access.see:
        raise PermissionDenied
    params = request.GET.copy()
    # The selects show what the list uses when the URL names nothing.
    params.setdefault("limit", "25")
    params.setdefault("sort", "lastUsedAt")
    form = SnapshotFilterForm(params)
    context: dict = {
        "form": form,
        "access": access,
        "rows": [],
        "rows_html": [],
        "error": "",
        "total": None,
    }
    context["bulk_verbs"] = BULK_VERBS
    context["filters"] = drawn_inputs(form, FILTER_FIELDS)
    status = 200
    if form.is_valid():
        try:
            page = await daytona.list_snapshots(**form.query())
        except daytona.BadRequest as error:
            form.add_error(None, error.message)
            status = 400
        except daytona.DaytonaError as error:
            context["error"] = error.message
        else:
            context["rows"] = [row_for(access, s) for s in page.items]
            context["rows_html"] = rows_html(context["rows"])
            context["total"] = page.total
            context |= _links(request.GET, page, form)
    else:
        status = 400
    context["filtered"] = bool(form.is_valid() and form.cleaned_data["q"])
    # Poll only while a build or a removal is under way; then stop the poll.
    context["polling"] = any(_changing(r.snapshot) for r in context["rows"])
    partial = htmx_partial(request)
    # The count sits in the page head, outside the results: a reload sends it along.
    context["oob_count"] = partial
    context["refresh"] = form.cleaned_data.get("refresh") if form.is_valid() else None
    idle = not context["polling"] and not context["refresh"]
    if partial and request.htmx.trigger == "results" and idle and status == 200:
        status = STOP_POLLING
    template = "snapshots/list.html#results" if partial else "snapshots/list.html"
    return await arender(request, template, context, status)


async def _users_of(snapshot: daytona.Snapshot) -> list[daytona.Sandbox] | None:
    """Sandboxes made from the snapshot (None if Daytona would not say)."""
    query = daytona.SandboxQuery(snapshots=(snapshot.name,))
    try:
        return await daytona.list_all_sandboxes(query, limit=200)
    except daytona.DaytonaError:
        return None


async def _refusal(snapshot: daytona.Snapshot, error: daytona.DaytonaError) -> str:
    """Daytona's reason, but a snapshot in use is told by its sandboxes' names, not ids."""
    users = await _users_of(snapshot) if isinstance(error, daytona.Conflict) else None
    if not users:
        return error.message
    names = ", ".join(sorted(s.name for s in users[:5])) + (" and more" if len(users) > 5 else "")
    many = len(users) > 1
    return (
        f"{names} {'use' if many else 'uses'} it; delete {'them' if many else 'that sandbox'} first"
    )


async def _log(snapshot: daytona.Snapshot) -> tuple[daytona.BuildLog | None, str]:
    try:
        return await daytona.build_log(snapshot.id, complete=snapshot.state in FINAL_STATES), ""
    except daytona.NotFound:
        return None, "This Daytona keeps no build log for this snapshot."
    except daytona.DaytonaError as error:
        return None, error.message


@require_GET
async def snapshot_detail(request: HttpRequest, snapshot_id: str) -> HttpResponse:
    """One snapshot: its facts, who uses it, and its build log (followed while it builds)."""
    access = snapshot_access(await request.auser())
    if not access.see:
        raise PermissionDenied
    try:
        snapshot = await daytona.get_snapshot(snapshot_id)
    except daytona.NotFound:
        raise Http404("No such snapshot: it may have been deleted.") from None
    except daytona.DaytonaError as error:
        context = {"error": error.message, "snapshot_id": snapshot_id, "access": access}
        return await arender(request, "snapshots/detail.html", context, 503)
    (log, log_error), users = await asyncio.gather(_log(snapshot), _users_of(snapshot))
    following = snapshot.state not in FINAL_STATES and snapshot.state != "removing"
    text = log.text if log else ""
    if following:
        # Whole lines only: the viewer asks for the rest from the start of the next.
        text = text[: text.rfind("\n") + 1]
    lines = text.splitlines(keepends=True)
    context = {
        "snapshot": snapshot,
        "snapshot_id": snapshot.id,
        "row": row_for(access, snapshot),
        "access": access,
        "log": log,
        "log_error": log_error,
        "offset": len(text),
        "following": following,
        "viewer": True,
        "lines": lines[-VIEWER_LINES:],
        "line_count": len(lines),
        "dropped": max(0, len(lines) - VIEWER_LINES),
        "users": users,
    }
    return await arender(request, "snapshots/detail.html", context)


def _lines_batch(
    request: HttpRequest,
    snapshot: daytona.Snapshot,
    text: str,
    offset: int,
    final: bool,
    log_error: str,
) -> HttpResponse:
    """The build log since `offset` in the Logs viewer's batch shape (static/js/logs.js).

    Only whole lines are sent while the build runs (a partial last line waits for its
    newline), so `offset` always falls on a line start and `first` numbers the lines:
    the page resumes with neither a gap nor a duplicate.
    """
    raw = request.GET.get("after", "0")
    after = int(raw) if raw.isdigit() and len(raw) <= 12 else 0
    reset = offset > len(text)
    if reset:
        offset, after = 0, 0
    new = text[offset:]
    if not final:
        new = new[: new.rfind("\n") + 1]
    lines = new.splitlines(keepends=True)[:LINES_PER_BATCH]
    consumed = sum(len(line) for line in lines)
    body = {
        "type": "lines",
        "first": after,
        "lines": [[1, line] for line in lines],
        "offset": offset + consumed,
        "reset": reset,
        "state": snapshot.state,
        # More to read now: the page asks again at once instead of in a second.
        "more": offset + consumed < len(text) and (final or "\n" in text[offset + consumed :]),
        "final": final and offset + consumed >= len(text),
        "error": log_error,
    }
    return JsonResponse(body, headers={"Cache-Control": "no-store"})


@require_GET
async def snapshot_log_download(request: HttpRequest, snapshot_id: str) -> HttpResponse:
    """The whole build log as a file, streamed through Sandbar in constant memory."""
    access = snapshot_access(await request.auser())
    if not access.see:
        raise PermissionDenied
    try:
        snapshot = await daytona.get_snapshot(snapshot_id)
        chunks = await streams.build_log(snapshot.id)
    except daytona.NotFound:
        raise Http404("No such snapshot or build log: it may have been deleted.") from None
    except daytona.DaytonaError as error:
        return HttpResponse(error.message, status=503, content_type="text/plain")
    name = re.sub(r"[^A-Za-z0-9._-]", "_", snapshot.name or snapshot.id)[:120]
    response = StreamingHttpResponse(chunks, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}-build.log"'
    return response


@require_GET
async def snapshot_log(request: HttpRequest, snapshot_id: str) -> HttpResponse:
    """What the build log gained since `offset`, and the state; 286 once the build ended."""
    access = snapshot_access(await request.auser())
    if not access.see:
        raise PermissionDenied
    raw = request.GET.get("offset", "0")
    if not raw.isdigit() or len(raw) > 12:
        return HttpResponse("offset must be a whole number of characters.", status=400)
    offset = int(raw)
    try:
        snapshot = await daytona.get_snapshot(snapshot_id)
    except daytona.NotFound:
        response = HttpResponse("This snapshot was deleted.", status=STOP_POLLING)
        return toast(response, "This snapshot was deleted.", "warning")
    except daytona.DaytonaError as error:
        # Keep following: Daytona may answer again on the next look.
        context = {"snapshot_id": snapshot_id, "offset": offset, "following": True}
        context["log_error"] = error.message
        return await arender(request, "snapshots/detail.html#follow", context)
    log, log_error = await _log(snapshot)
    text = log.text if log else ""
    # A shorter log than before means it was cut to its tail: show it afresh.
    reset = offset > len(text)
    final = snapshot.state in FINAL_STATES or snapshot.state == "removing"
    if request.GET.get("format") == "lines":
        return _lines_batch(request, snapshot, text, offset, final, log_error)
    if request.GET.get("head") == "1":
        # The viewer draws the log itself and asks only for the state and its head.
        offset = len(text)
    context = {
        "snapshot": snapshot,
        "row": row_for(access, snapshot),
        "snapshot_id": snapshot.id,
        "chunk": text if reset else text[offset:],
        "reset": reset,
        "offset": len(text),
        "following": not final,
        "log_error": log_error,
        "oob": True,
        "viewer": request.GET.get("head") == "1",
    }
    response = await arender(
        request, "snapshots/detail.html#follow", context, STOP_POLLING if final else 200
    )
    if final:
        if snapshot.state in ("error", "build_failed"):
            message = f"{snapshot.name}: build failed. {snapshot.error_reason}".strip()
            return toast(response, message, "error")
        return toast(response, f"{snapshot.name} is {snapshot.state}.", "success")
    return response


async def _sources() -> tuple[tuple[str, ...], str, str]:
    """The source kinds this connection builds from, why others are missing, and a warning."""
    try:
        engine = await daytona.engine_host()
    except daytona.DaytonaError as error:
        # Unknown connection: offer every kind and let Daytona's answer decide.
        return tuple(k for k, _ in SOURCE_KINDS), "", f"Could not ask Daytona: {error.message}"
    if engine is not None:
        if dict(engine.features).get("images"):
            return ENGINE_KINDS, "", ""
        why = "This engine pulls no container images: its machine lacks skopeo or umoci."
        return ENGINE_KINDS_NO_IMAGES, why, ""
    return DAYTONA_KINDS, "Daytona builds snapshots from images and sandboxes only.", ""


@require_http_methods(["GET", "POST"])
async def create(request: HttpRequest) -> HttpResponse:
    """The form for a new snapshot; on success, its page, which follows the build."""
    if not snapshot_access(await request.auser()).act:
        raise PermissionDenied
    kinds, why, warning = await _sources()
    form = CreateSnapshotForm(request.POST or None, kinds=kinds, why=why)
    if request.method == "POST" and form.is_valid():
        try:
            snapshot = await actions.do_create_snapshot(request, form.cleaned_data)
        except daytona.Conflict as problem:
            form.add_error("name", problem.message)
        except daytona.QuotaExceeded as problem:
            form.add_error(None, f"Over the organization's limit: {problem.message}")
        except daytona.DaytonaError as problem:
            field = "source" if isinstance(problem, daytona.BadRequest) else None
            form.add_error(field, problem.message)
        else:
            url = reverse("snapshot", args=[snapshot.id])
            await sync_to_async(messages.success)(
                request, f"Building {snapshot.name}; its log follows below."
            )
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    # A refused form re-renders with 200: it is a page to correct, not an error.
    template = "snapshots/create.html#form" if htmx_partial(request) else "snapshots/create.html"
    return await arender(request, template, {"form": form, "warning": warning})


async def _fragment(
    request: HttpRequest, access: Access, snapshot: daytona.Snapshot, status: int, problem: str = ""
) -> HttpResponse:
    """The part of the page that shows the snapshot: its row, or the page head."""
    page = request.POST.get("view") == "page"
    template = "snapshots/_head.html" if page else "snapshots/_row.html"
    context = {"row": row_for(access, snapshot, problem), "snapshot": snapshot}
    return await arender(request, template, context, status)


@require_POST
async def snapshot_action(request: HttpRequest, snapshot_id: str, verb: str) -> HttpResponse:
    """Activate, deactivate or delete one snapshot."""
    if verb not in actions.VERBS:
        raise Http404
    label, done = LABELS[verb]
    access = snapshot_access(await request.auser())
    if not access.act:
        await actions.refuse(request, f"snapshot.{verb}", snapshot_id)
    try:
        snapshot = await daytona.get_snapshot(snapshot_id)
    except daytona.DaytonaError as error:
        gone = "This snapshot no longer exists: it was deleted elsewhere."
        return await lookup_failed(request, error, gone, "snapshots")
    problem = ""
    if not actions.applies(verb, snapshot):
        reason = "the shared system snapshot" if snapshot.general else snapshot.state
        problem, status = f"Cannot {verb} {snapshot.name}: it is {reason.replace('_', ' ')}.", 409
    else:
        try:
            result = await actions.do_snapshot_action(request, snapshot, verb)
        except daytona.DaytonaError as error:
            problem, status = (
                f"{label} refused: {await _refusal(snapshot, error)}",
                status_for(error),
            )
            try:
                snapshot = await daytona.get_snapshot(snapshot_id)
            except daytona.DaytonaError:
                return toast(HttpResponse(problem, status=status), problem, "error")
    if problem:
        if not htmx_partial(request):
            await sync_to_async(messages.error)(request, problem)
            return redirect("snapshot", snapshot.id)
        status = 400 if status >= 500 else status
        response = await _fragment(request, access, snapshot, status, problem)
        return toast(response, problem, "error")
    message = f"{done} {snapshot.name}."
    if not htmx_partial(request):
        await sync_to_async(messages.success)(request, message)
        return redirect("snapshots") if verb == "delete" else redirect("snapshot", snapshot.id)
    if verb == "delete":
        if request.POST.get("view") == "page":
            await sync_to_async(messages.success)(request, message)
            return HttpResponseClientRedirect(reverse("snapshots"))
        # The row goes away: an empty answer replaces it.
        return toast(HttpResponse(""), message, "success")
    return toast(await _fragment(request, access, result or snapshot, 200), message, "success")


async def _bulk_one(request: HttpRequest, snapshot_id: str, verb: str) -> BulkResult:
    try:
        snapshot = await daytona.get_snapshot(snapshot_id)
    except daytona.NotFound:
        return BulkResult(snapshot_id, False, "it no longer exists")
    except daytona.DaytonaError as error:
        return BulkResult(snapshot_id, False, error.message)
    if not actions.applies(verb, snapshot):
        reason = "the shared system snapshot" if snapshot.general else snapshot.state
        return BulkResult(snapshot.name, False, f"it is {reason.replace('_', ' ')}")
    try:
        await actions.do_snapshot_action(request, snapshot, verb)
    except daytona.DaytonaError as error:
        return BulkResult(snapshot.name, False, await _refusal(snapshot, error))
    return BulkResult(snapshot.name, True)


@require_POST
async def bulk(request: HttpRequest) -> HttpResponse:
    """One action over the selected snapshots, one after another; a report of refusals."""
    verb, ids = request.POST.get("verb", ""), bulk_ids(request)
    if not snapshot_access(await request.auser()).act:
        await actions.refuse(request, f"snapshot.{verb or 'bulk'}"[:64], " ".join(ids)[:255])
    if verb not in actions.VERBS or not ids:
        message = "Choose an action and at least one snapshot."
        return toast(HttpResponse(message, status=400), message, "error")
    label = LABELS[verb][0]
    # One at a time, as Daytona's dashboard does: a refusal never hides behind another.
    results = [await _bulk_one(request, i, verb) for i in ids]
    return await bulk_report(request, label, results, "snapshots", CHANGED_EVENT)
