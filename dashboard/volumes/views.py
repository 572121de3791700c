"""The volumes area: the list (with which sandboxes mount each), create and delete."""

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from dashboard import daytona
from dashboard.accounts.access import Access, volume_access
from dashboard.core.bulk import BulkResult, bulk_ids, bulk_report
from dashboard.core.http import arender, htmx_partial, lookup_failed, toast
from dashboard.core.kept import KeptRows
from dashboard.core.templatetags.sandbar import state_tone
from dashboard.core.widgets import drawn_inputs
from dashboard.volumes import actions
from dashboard.volumes.forms import CreateVolumeForm, VolumeFilterForm

PAGE_SIZE = 25
STOP_POLLING = 286
# Tells the list to reload after a create (the new row's place depends on the order).
CHANGED_EVENT = "volumes-changed"
# Up to this many sandboxes, each is read to learn which volumes it mounts.
MOUNT_SCAN = 50
MOUNT_READS = 8


@dataclass(frozen=True)
class Mount:
    sandbox_id: str
    sandbox_name: str
    mount_path: str


@dataclass(frozen=True)
class Row:
    """A volume as one person sees it: who mounts it and whether they may delete it."""

    volume: daytona.Volume
    can_act: bool
    mounts: tuple[Mount, ...] | None = field(default=())
    problem: str = ""

    @property
    def deletable(self) -> bool:
        return self.volume.state not in actions.UNDELETABLE

    @property
    def why_not(self) -> str:
        """Why deleting it now would be refused, said before anyone clicks."""
        if not self.can_act:
            return "Only admins may delete volumes"
        if not self.deletable:
            return f"It is {self.volume.state.replace('_', ' ')}"
        if self.mounts:
            names = ", ".join(m.sandbox_name for m in self.mounts[:3])
            return f"Mounted by {names}; delete those sandboxes first"
        return ""


async def _mounts() -> dict[str, tuple[Mount, ...]] | None:
    """Which live sandboxes mount each volume (None when it cannot be known cheaply).

    Daytona's list leaves out each sandbox's volumes, so each is read on its own:
    only for an organization small enough that this stays quick.
    """
    try:
        listed = [s for s in await daytona.list_all_sandboxes(limit=MOUNT_SCAN + 1) if not s.gone]
    except daytona.DaytonaError:
        return None
    if len(listed) > MOUNT_SCAN:
        return None
    gate = asyncio.Semaphore(MOUNT_READS)

    async def read(sandbox_id: str) -> daytona.Sandbox | None:
        async with gate:
            try:
                return await daytona.get_sandbox(sandbox_id)
            except daytona.NotFound:
                return None  # deleted since the list: it mounts nothing

    try:
        sandboxes = await asyncio.gather(*(read(s.id) for s in listed))
    except daytona.DaytonaError:
        return None
    found: dict[str, list[Mount]] = defaultdict(list)
    for sandbox in sandboxes:
        for mount in sandbox.volumes if sandbox and not sandbox.gone else ():
            found[mount.volume_id].append(Mount(sandbox.id, sandbox.name, mount.mount_path))
    return {k: tuple(v) for k, v in found.items()}


async def _in_use(volume: daytona.Volume, error: daytona.DaytonaError) -> str:
    """Why a delete was refused, naming the sandboxes that mount it (Daytona gives ids)."""
    mounts = (await _mounts() or {}).get(volume.id, ())
    if not mounts:
        return error.message
    names = ", ".join(sorted({m.sandbox_name for m in mounts}))
    many = len(mounts) > 1
    return (
        f"{names} mount{'' if many else 's'} it; delete {'them' if many else 'that sandbox'} first"
    )


def _matches(volume: daytona.Volume, q: str) -> bool:
    q = q.lower()
    return q in volume.name.lower() or q in volume.id.lower() or q in volume.state


# Drawn rows kept in this process (dashboard/core/kept.py): a volume's row through the
# template engine costs about a millisecond, more than the page's Daytona calls.
ROWS = KeptRows("volumes/_row.html", "_state_badge.html", times=("created", "last"))


def _times(row: Row) -> dict[str, datetime | None]:
    return {"created": row.volume.created_at, "last": row.volume.last_used_at}


def row_for(
    access: Access,
    volume: daytona.Volume,
    mounts: dict[str, tuple[Mount, ...]] | None,
    problem: str = "",
) -> Row:
    return Row(volume, access.act, None if mounts is None else mounts.get(volume.id, ()), problem)


@require_GET
async def volume_list(request: HttpRequest) -> HttpResponse:
    """Every volume, searched and paged here (Daytona returns them all at once)."""
    access = volume_access(await request.auser())
    if not access.see:
        raise PermissionDenied
    form = VolumeFilterForm(request.GET)
    context: dict = {"form": form, "access": access, "page": None, "error": "", "total": None}
    context["filters"] = drawn_inputs(form, ("q", "refresh"))
    context["create_form"] = CreateVolumeForm()
    context["bulk_verbs"] = [("delete", "Delete")]
    status = 200
    if form.is_valid():
        volumes, mounts = await asyncio.gather(
            daytona.list_volumes(), _mounts(), return_exceptions=True
        )
        if isinstance(volumes, daytona.DaytonaError):
            context["error"] = volumes.message
        elif isinstance(volumes, BaseException):
            raise volumes
        else:
            q = form.cleaned_data["q"].strip()
            chosen = [v for v in volumes if not q or _matches(v, q)]
            chosen.sort(key=lambda v: (v.created_at is None, v.created_at), reverse=True)
            paginator = Paginator(chosen, PAGE_SIZE)
            page = paginator.get_page(form.cleaned_data["page"] or 1)
            context["page"] = page
            context["rows"] = [row_for(access, v, mounts) for v in page]
            context["rows_html"] = ROWS.html(context["rows"], _times)
            context["total"] = len(chosen)
        query = request.GET.copy()
        query.pop("page", None)
        context["query"] = query.urlencode()
        context["filtered"] = bool(form.cleaned_data["q"])
    else:
        status = 400
    rows = context.get("rows", [])
    context["polling"] = any(state_tone(r.volume.state) == "changing" for r in rows)
    partial = htmx_partial(request)
    # The count sits in the page head, outside the results: a reload sends it along.
    context["oob_count"] = partial
    context["refresh"] = form.cleaned_data.get("refresh") if form.is_valid() else None
    idle = not context["polling"] and not context["refresh"]
    if partial and request.htmx.trigger == "results" and idle and status == 200:
        status = STOP_POLLING
    template = "volumes/list.html#results" if partial else "volumes/list.html"
    return await arender(request, template, context, status)


@require_http_methods(["GET", "POST"])
async def create(request: HttpRequest) -> HttpResponse:
    """Create a volume by name (the only thing Daytona asks for)."""
    if not volume_access(await request.auser()).act:
        raise PermissionDenied
    form = CreateVolumeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        name = form.cleaned_data["name"]
        try:
            volume = await actions.do_create_volume(request, name)
        except daytona.Conflict as problem:
            form.add_error("name", problem.message)
        except daytona.QuotaExceeded as problem:
            form.add_error(None, f"Over the organization's volume limit: {problem.message}")
        except daytona.DaytonaError as problem:
            form.add_error(None, problem.message)
        else:
            message = f"Created the volume {volume.name}."
            if not htmx_partial(request):
                await sync_to_async(messages.success)(request, message)
                return redirect("volumes")
            response = await arender(
                request, "volumes/list.html#create", {"create_form": CreateVolumeForm()}
            )
            trigger_client_event(response, CHANGED_EVENT)
            return toast(response, message, "success")
    template = "volumes/list.html#create" if htmx_partial(request) else "volumes/create.html"
    return await arender(request, template, {"create_form": form})


@require_POST
async def delete(request: HttpRequest, volume_id: str) -> HttpResponse:
    """Delete a volume; a refusal (still mounted) shows on its row."""
    access = volume_access(await request.auser())
    if not access.act:
        await actions.refuse(request, "volume.delete", volume_id)
    try:
        volume = await daytona.get_volume(volume_id)
    except daytona.DaytonaError as error:
        gone = "This volume no longer exists: it was deleted elsewhere."
        return await lookup_failed(request, error, gone, "volumes")
    status = 200
    try:
        await actions.do_delete_volume(request, volume)
    except daytona.Conflict as error:
        problem, status = f"Not deleted: {await _in_use(volume, error)}", 409
    except daytona.NotFound:
        raise Http404("This volume no longer exists.") from None
    except daytona.DaytonaError as error:
        problem, status = f"Delete failed: {error.message}", 400
    else:
        problem = ""
    if not htmx_partial(request):
        level = messages.error if problem else messages.success
        await sync_to_async(level)(request, problem or f"Deleting {volume.name}.")
        return redirect("volumes")
    if not problem:
        # The list reloads too, so its count and the other rows' mounts follow.
        response = trigger_client_event(HttpResponse(""), CHANGED_EVENT)
        return toast(response, f"Deleted the volume {volume.name}.", "success")
    row = row_for(access, volume, await _mounts(), problem)
    response = await arender(request, "volumes/_row.html", {"row": row}, status)
    return toast(response, problem, "error")


@require_POST
async def bulk(request: HttpRequest) -> HttpResponse:
    """Delete the selected volumes, one after another; a report of refusals."""
    ids = bulk_ids(request)
    if not volume_access(await request.auser()).act:
        await actions.refuse(request, "volume.delete", " ".join(ids)[:255])
    if request.POST.get("verb") != "delete" or not ids:
        message = "Choose at least one volume to delete."
        return toast(HttpResponse(message, status=400), message, "error")
    results = []
    for volume_id in ids:
        name = volume_id
        try:
            volume = await daytona.get_volume(volume_id)
            name = volume.name
            await actions.do_delete_volume(request, volume)
        except daytona.NotFound:
            results.append(BulkResult(name, False, "it no longer exists"))
        except daytona.Conflict as error:
            results.append(BulkResult(name, False, await _in_use(volume, error)))
        except daytona.DaytonaError as error:
            results.append(BulkResult(name, False, error.message))
        else:
            results.append(BulkResult(name, True))
    return await bulk_report(request, "Delete", results, "volumes", CHANGED_EVENT)
