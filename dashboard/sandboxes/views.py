"""The sandboxes area: the list, one sandbox's page, create, actions, bulk actions, settings.

Views are async: a slow Daytona then holds no thread, and the rest of the
dashboard keeps answering while a call waits for its timeout.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import uuid4

from asgiref.sync import sync_to_async
from django import forms
from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from dashboard import daytona
from dashboard.accounts.access import sandbox_access
from dashboard.core.bulk import BulkResult
from dashboard.core.http import arender, arender_to_string, htmx_partial, status_for, toast
from dashboard.daytona.labels import OWNER_LABEL
from dashboard.sandboxes import actions, saved
from dashboard.sandboxes.actions import applies
from dashboard.sandboxes.forms import (
    DEFAULT_PAGE_SIZE,
    ORDER_CHOICES,
    PAGE_SIZES,
    PUBLIC_CHOICES,
    SORT_CHOICES,
    STATE_CHOICES,
    VERBS,
    BulkForm,
    CreateSandboxForm,
    LabelsForm,
    LifecycleForm,
    NetworkForm,
    ResizeForm,
    SandboxFilterForm,
)
from dashboard.sandboxes.rows import sandbox_row, sandbox_rows

# What each action is called on a button, and what is said while it runs.
ACTION_LABELS = {
    "start": ("Start", "Starting", "play"),
    "stop": ("Stop", "Stopping", "square"),
    "archive": ("Archive", "Archiving", "archive"),
    "recover": ("Recover", "Recovering", "rotate-ccw"),
    "delete": ("Delete", "Deleting", "trash-2"),
}
TABS = ("overview", "terminal", "logs", "files", "metrics")
ONCE_SECONDS = 120


@dataclass(frozen=True)
class Row:
    """A sandbox as one person sees it: what they may do with it, right now."""

    sandbox: daytona.Sandbox
    can_act: bool
    verbs: tuple[str, ...]

    @property
    def primary(self) -> str | None:
        for verb in ("stop", "start", "recover"):
            if verb in self.verbs:
                return verb
        return None


def row_for(user, sandbox: daytona.Sandbox) -> Row:
    access = sandbox_access(user, sandbox.labels)
    verbs = tuple(v for v in VERBS if applies(v, sandbox))
    return Row(sandbox, access.act, verbs)


def _settings_context(sandbox: daytona.Sandbox, submitted: QueryDict | None = None) -> dict:
    """What the settings forms show: what was just sent if it failed, else the sandbox."""
    if submitted is not None:
        keys, values = submitted.getlist("label_key"), submitted.getlist("label_value")
        rows = list(zip(keys, values, strict=False))
        fields = {k: submitted.get(k, "") for k in ("auto_stop", "auto_archive", "auto_delete")}
        fields |= {
            "public": bool(submitted.get("public")),
            "network_block_all": bool(submitted.get("network_block_all")),
            "network_allow_list": submitted.get("network_allow_list", ""),
        }
        fields |= {k: submitted.get(k, "") for k in ("cpu", "memory", "disk")}
    else:
        rows = sorted((k, v) for k, v in sandbox.labels.items() if k != OWNER_LABEL)
        delete = sandbox.auto_delete_interval
        fields = {
            "auto_stop": sandbox.auto_stop_interval,
            "auto_archive": sandbox.auto_archive_interval,
            "auto_delete": None if delete is None or delete < 0 else delete,
            "public": sandbox.public,
            "network_block_all": sandbox.network_block_all,
            "network_allow_list": sandbox.network_allow_list,
            "cpu": sandbox.cpu,
            "memory": sandbox.memory,
            "disk": sandbox.disk,
        }
    return {"label_rows": [*rows, ("", "")], "values": fields}


async def _search(form: SandboxFilterForm) -> daytona.SandboxPage:
    """The page the form asks for; a search that matches no name is tried as an id."""
    query = form.query()
    page = await daytona.list_sandboxes(query)
    q = form.cleaned_data["q"]
    if q and not page.items and not query.cursor:
        by_id = daytona.SandboxQuery(**{**query.__dict__, "name": None, "id": q})
        page = await daytona.list_sandboxes(by_id)
    return page


def _pager(form: SandboxFilterForm, params: QueryDict, next_cursor: str | None) -> dict:
    """Links to the next and previous pages: Daytona's cursors only go forwards, so the
    cursors of earlier pages travel in the URL (`trail`)."""
    data = form.cleaned_data
    cursor, trail = data["cursor"], data["trail"]
    base = params.copy()
    for key in ("cursor", "trail"):
        base.pop(key, None)

    def link(new_cursor: str, new_trail: list[str]) -> str:
        query = base.copy()
        if new_cursor:
            query["cursor"] = new_cursor
        if new_trail:
            query["trail"] = " ".join(new_trail)
        return query.urlencode()

    previous = None
    if trail:
        previous = link(trail[-1], trail[:-1])
    elif cursor:
        previous = link("", [])
    following = link(next_cursor, [*trail, cursor] if cursor else trail) if next_cursor else None
    return {
        "previous": previous,
        "next": following,
        "first": link("", []) if cursor else None,
        "number": len(trail) + (2 if cursor else 1),
    }


def _sort_links(form: SandboxFilterForm, params: QueryDict) -> dict[str, dict]:
    """For each sortable column, the URL that sorts by it (flipping the order if it does)."""
    data = form.cleaned_data if form.is_valid() else {}
    current = data.get("sort") or "lastActivityAt"
    order = data.get("order") or ("asc" if current == "name" else "desc")
    links = {}
    for key in ("name", "createdAt", "lastActivityAt"):
        query = params.copy()
        for drop in ("cursor", "trail", "sort", "order"):
            query.pop(drop, None)
        query["sort"] = key
        active = key == current
        query["order"] = (
            ("asc" if order == "desc" else "desc")
            if active
            else ("asc" if key == "name" else "desc")
        )
        links[key] = {
            "url": query.urlencode(),
            "active": active,
            "aria": ("ascending" if order == "asc" else "descending") if active else "none",
        }
    return links


def _filter_values(form: SandboxFilterForm) -> dict:
    """What the filter inputs show: what was asked for, as typed."""
    data = form.data
    values = {name: data.get(name, "") for name in form.fields if name != "states"}
    values["limit"] = values["limit"] or str(DEFAULT_PAGE_SIZE)
    more = ("min_cpu", "max_cpu", "min_memory", "max_memory", "min_disk", "max_disk")
    more += ("created_after", "created_before", "last_event_after", "last_event_before")
    return {
        "values": values,
        "chosen_states": data.getlist("states"),
        "more_open": any(values[name] for name in more),
        "state_choices": STATE_CHOICES,
        "public_choices": PUBLIC_CHOICES,
        "sort_choices": SORT_CHOICES,
        "order_choices": ORDER_CHOICES,
        "page_sizes": PAGE_SIZES,
    }


def _mine_links(params: QueryDict, username: str) -> dict:
    """The "All / Mine" switch: the same filters, with the owner filter set to this person
    or dropped (a plain link: the filter form then shows the owner it filters by)."""
    query = params.copy()
    for key in ("cursor", "trail", "owner"):
        query.pop(key, None)
    everyone = query.urlencode()
    query["owner"] = username
    return {
        "active": params.get("owner") == username,
        "all": everyone,
        "mine": query.urlencode(),
    }


# Where the results go in the page rendered before they are known.
RESULTS_MARK = SafeString("<!--sandbar:results-->")


@require_GET
async def sandbox_list(request: HttpRequest) -> HttpResponse:
    """Every sandbox the team has, filtered, sorted and paged as the URL says.

    The page around the results is rendered while Daytona answers, so it costs
    nothing; the results are rendered into it when the answer is in.
    """
    user = await request.auser()
    access = sandbox_access(user)
    if not access.see:
        raise PermissionDenied
    form = SandboxFilterForm(request.GET)
    search = await daytona.started(_search(form)) if form.is_valid() else None
    context: dict = {"form": form, "access": access, "rows": [], "error": "", "chips": []}
    page = None
    try:
        context["sorts"] = _sort_links(form, request.GET)
        context |= _filter_values(form)
        context["mine"] = _mine_links(request.GET, user.get_username())
        context["saved_views"] = await saved.saved_views(user)
        context["current_query"] = saved.normalized(request.GET)
        if not htmx_partial(request):
            around = {**context, "results": RESULTS_MARK}
            page = await arender(request, "sandboxes/list.html", around)
    except BaseException:
        if search is not None:
            search.cancel()  # nobody is left to wait for Daytona's answer
        raise
    status = 200 if search else 400
    if search:
        try:
            found = await search
        except daytona.BadRequest as error:
            form.add_error(None, error.message)
            status = 400
        except daytona.DaytonaError as error:
            context["error"] = error.message
        else:
            context["rows"] = [row_for(user, s) for s in found.items]
            context["rows_html"] = sandbox_rows(context["rows"])
            context["pager"] = _pager(form, request.GET, found.next_cursor)
        context["chips"] = form.chips(request.GET)
    context["filtered"] = bool(context["chips"])
    results = await arender_to_string(request, "sandboxes/list.html#results", context)
    if page is None:
        return HttpResponse(results, status=status)
    page.content = page.content.replace(RESULTS_MARK.encode(), results.encode(), 1)
    page.status_code = status
    return page


@require_GET
async def sandbox_detail(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """One sandbox: its state, settings (editable by those who may act) and tabs."""
    user = await request.auser()
    tab = request.GET.get("tab", "overview")
    if tab not in TABS:
        tab = "overview"
    try:
        sandbox, access = await actions.find_sandbox(user, sandbox_id)
    except daytona.NotFound:
        return await arender(request, "sandboxes/gone.html", {"sandbox_id": sandbox_id}, 404)
    except daytona.DaytonaError as error:
        context = {"error": error.message, "sandbox_id": sandbox_id}
        return await arender(request, "sandboxes/unavailable.html", context, 503)
    context = {
        "sandbox": sandbox,
        "row": row_for(user, sandbox),
        "access": access,
        "tab": tab,
        "tabs": TABS,
        **_settings_context(sandbox),
    }
    template = "sandboxes/detail.html"
    if htmx_partial(request) and request.GET.get("part") == "head":
        template = "sandboxes/_head.html"
    return await arender(request, template, context)


async def _duplicate(request: HttpRequest) -> bool:
    """A second submission of the same form (a double click): it must not run twice."""
    token = request.POST.get("once", "")
    if not token:
        return False
    return not await cache.aadd(f"sandbar:once:{token[:64]}", 1, ONCE_SECONDS)


async def _refreshed(user, sandbox_id: str) -> daytona.Sandbox | None:
    try:
        return (await actions.find_sandbox(user, sandbox_id))[0]
    except (daytona.DaytonaError, Http404):
        return None


async def _fragment(request: HttpRequest, sandbox: daytona.Sandbox, status: int = 200):
    """The part of the page that shows the sandbox's state: a row or the page head."""
    user = await request.auser()
    context = {"row": row_for(user, sandbox), "sandbox": sandbox}
    if request.POST.get("view") == "page":
        return await arender(request, "sandboxes/_head.html", context, status)
    return HttpResponse(sandbox_row(context["row"]), status=status)


@require_POST
async def sandbox_action(request: HttpRequest, sandbox_id: str, verb: str) -> HttpResponse:
    """Start, stop, archive, recover or delete one sandbox."""
    if verb not in VERBS:
        raise Http404
    label, doing, _icon = ACTION_LABELS[verb]
    user = await request.auser()
    if await _duplicate(request):
        sandbox = await _refreshed(user, sandbox_id)
        if not htmx_partial(request) or sandbox is None:
            return redirect("sandbox", sandbox_id)
        return toast(await _fragment(request, sandbox, 409), "Already sent: it runs once.")
    try:
        sandbox = await actions.do_action(request, sandbox_id, verb)
    except daytona.NotFound:
        message = "This sandbox no longer exists: it was deleted elsewhere."
        if not htmx_partial(request):
            await sync_to_async(messages.error)(request, message)
            return redirect("sandboxes")
        return toast(HttpResponse(message, status=404), message, "error")
    except daytona.DaytonaError as error:
        message = f"{label} failed: {error.message}"
        if not htmx_partial(request):
            await sync_to_async(messages.error)(request, message)
            return redirect("sandbox", sandbox_id)
        current = await _refreshed(user, sandbox_id)
        status = status_for(error)
        if current is None or status >= 500:
            return toast(HttpResponse(message, status=status), message, "error")
        return toast(await _fragment(request, current, status), message, "error")
    message = f"{doing} {sandbox.name}…"
    if not htmx_partial(request):
        await sync_to_async(messages.success)(request, message)
        return redirect(
            "sandboxes" if verb == "delete" else "sandbox",
            *([] if verb == "delete" else [sandbox.id]),
        )
    if verb == "delete" and request.POST.get("view") == "page":
        await sync_to_async(messages.success)(request, f"Deleting {sandbox.name}.")
        return HttpResponseClientRedirect(reverse("sandboxes"))
    return toast(await _fragment(request, sandbox), message, "success")


async def _create_choices() -> tuple[list[daytona.Snapshot], list[daytona.Volume], str]:
    """Snapshots and volumes to offer on the create form; a failure leaves them empty."""
    snapshots, volumes = await asyncio.gather(
        daytona.list_snapshots(limit=100), daytona.list_volumes(), return_exceptions=True
    )
    error = ""
    for result in (snapshots, volumes):
        # NotFound: this Daytona has no such endpoint, so nothing to choose from.
        if isinstance(result, daytona.DaytonaError) and not isinstance(result, daytona.NotFound):
            error = result.message
        elif isinstance(result, BaseException):
            raise result
    return (
        [s for s in snapshots.items if s.state == "active"]
        if not isinstance(snapshots, BaseException)
        else [],
        [v for v in volumes if v.state == "ready"]
        if not isinstance(volumes, BaseException)
        else [],
        error,
    )


@require_http_methods(["GET", "POST"])
async def create(request: HttpRequest) -> HttpResponse:
    """The form for a new sandbox; on success, its page."""
    user = await request.auser()
    if not sandbox_access(user).act:
        raise PermissionDenied
    snapshots, volumes, error = await _create_choices()
    form = CreateSandboxForm(request.POST or None, volumes=volumes)
    if request.method == "POST" and form.is_valid():
        if await _duplicate(request):
            form.add_error(None, "This form was already sent; look for the sandbox in the list.")
        else:
            try:
                sandbox = await actions.do_create_sandbox(request, form.cleaned_data)
            except daytona.Conflict as problem:
                form.add_error("name", problem.message)
            except daytona.DaytonaError as problem:
                form.refused(problem.message)
            else:
                url = reverse("sandbox", args=[sandbox.id])
                await sync_to_async(messages.success)(request, f"Created {sandbox.name}.")
                return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    context = {
        "form": form,
        "snapshots": snapshots,
        "volumes": volumes,
        "error": error,
        "once": uuid4().hex,
        "env_rows": form.env_rows.rows or [("", "")],
        "label_rows": form.label_rows.rows or [("", "")],
        "volume_rows": form.volume_rows or [("", "")],
    }
    template = "sandboxes/create.html#form" if htmx_partial(request) else "sandboxes/create.html"
    return await arender(request, template, context)


async def _edit(
    request: HttpRequest,
    sandbox_id: str,
    form: forms.Form,
    change: Callable[..., Awaitable[daytona.Sandbox]],
    part: str = "",
) -> HttpResponse:
    """Shared by the settings forms: validate, change, answer with the overview.

    `change` is the form's action, called with the form's fields as its keywords."""
    user = await request.auser()
    try:
        sandbox, access = await actions.find_sandbox(user, sandbox_id)
    except daytona.NotFound:
        raise Http404("This sandbox no longer exists.") from None
    if not access.act:
        raise PermissionDenied(actions.NOT_YOURS)
    error = ""
    status = 200
    if form.is_valid():
        try:
            sandbox = await change(request, sandbox_id, **form.cleaned_data)
        except daytona.NotFound as problem:
            # Either the sandbox vanished, or this Daytona lacks the endpoint.
            if await _refreshed(user, sandbox_id) is None:
                raise Http404("This sandbox no longer exists.") from None
            error, status = f"Daytona cannot change this: {problem.message}", 400
        except daytona.DaytonaError as problem:
            error = problem.message
            status = status_for(problem)
            status = 400 if status >= 500 else status
    else:
        error = " ".join(str(e) for errors in form.errors.values() for e in errors)
        status = 400
    context = {
        "sandbox": sandbox,
        "row": row_for(user, sandbox),
        "access": access,
        "settings_error": error,
        "error_for": part if error else "",
        **_settings_context(sandbox, request.POST if error else None),
    }
    if not htmx_partial(request):
        if not error:
            return redirect("sandbox", sandbox_id)
        # The whole page, with the error by the form and what was typed still in it.
        page = {**context, "tab": "overview", "tabs": TABS}
        return await arender(request, "sandboxes/detail.html", page, status)
    response = await arender(request, "sandboxes/detail.html#settings", context, status)
    if not error:
        # The overview card shows some of what changed (resources): swapped out of band.
        facts = {**context, "oob": True}
        response.content += (
            await arender_to_string(request, "sandboxes/detail.html#facts", facts)
        ).encode()
    return toast(response, error or "Saved.", "error" if error else "success")


@require_POST
async def edit_labels(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """Replace the sandbox's labels (its owner label stays)."""
    return await _edit(request, sandbox_id, LabelsForm(request.POST), actions.do_set_labels)


@require_POST
async def edit_lifecycle(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """Set auto-stop, auto-archive and auto-delete."""
    form = LifecycleForm(request.POST)
    return await _edit(request, sandbox_id, form, actions.do_set_lifecycle)


@require_POST
async def edit_network(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """Set public previews and network access."""
    form = NetworkForm(request.POST)
    return await _edit(request, sandbox_id, form, actions.do_set_network, "network")


@require_POST
async def edit_resources(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """Resize: CPU, memory and disk (Daytona's refusal shows on the form, the input kept)."""
    form = ResizeForm(request.POST)
    return await _edit(request, sandbox_id, form, actions.do_resize_sandbox, "resources")


async def _selected(user, ids: list[str]) -> list[daytona.Sandbox]:
    found = await asyncio.gather(*(daytona.get_sandbox(i) for i in ids), return_exceptions=True)
    sandboxes = []
    for result in found:
        if isinstance(result, daytona.Sandbox) and sandbox_access(user, result.labels).see:
            sandboxes.append(result)
        elif isinstance(result, BaseException) and not isinstance(result, daytona.DaytonaError):
            raise result
    return sandboxes


@require_POST
async def bulk(request: HttpRequest) -> HttpResponse:
    """A bulk action: first a confirmation listing what it applies to, then the report."""
    user = await request.auser()
    if not sandbox_access(user).see:
        raise PermissionDenied
    form = BulkForm(request.POST)
    if not form.is_valid():
        message = "Choose an action and at least one sandbox."
        return toast(HttpResponse(message, status=400), message, "error")
    verb = form.cleaned_data["verb"]
    label = ACTION_LABELS[verb][0]
    if form.cleaned_data["confirmed"] and await _duplicate(request):
        message = "Already sent: it runs once."
        return toast(HttpResponse(message, status=409), message, "warning")
    try:
        chosen = await _selected(user, form.cleaned_data["ids"])
    except daytona.DaytonaError as error:
        return toast(HttpResponse(error.message, status=503), error.message, "error")
    eligible, skipped = [], []
    for sandbox in chosen:
        row = row_for(user, sandbox)
        if not row.can_act:
            skipped.append((sandbox, actions.NOT_YOURS))
        elif verb not in row.verbs:
            skipped.append((sandbox, f"Cannot {verb} while {sandbox.state.replace('_', ' ')}."))
        else:
            eligible.append(sandbox)
    found = {s.id for s in chosen} | {s.name for s in chosen}
    missing = [i for i in form.cleaned_data["ids"] if i not in found]
    context = {
        "verb": verb,
        "label": label,
        "eligible": eligible,
        "skipped": skipped,
        "missing": missing,
    }
    if form.cleaned_data["confirmed"] and request.POST.get("steps") and (eligible or missing):
        # The browser runs each sandbox as its own request and shows progress as they finish.
        context["steps"] = [(s, await _bulk_token(user, verb, s)) for s in eligible]
        context["total"] = len(eligible) + len(missing)
        return await arender(request, "sandboxes/_bulk.html", context)
    if form.cleaned_data["confirmed"] and (eligible or missing):
        results = await actions.do_bulk_action(request, verb, eligible)
        # Confirmed, then deleted elsewhere before the click: a failure to report.
        results += [BulkResult(i, False, "It no longer exists.", id=i) for i in missing]
        context["results"] = results
        context["failed"] = [r for r in results if not r.ok]
        context["done"] = len(results) - len(context["failed"])
        response = await arender(request, "sandboxes/_bulk.html", context)
        level = "error" if context["failed"] else "success"
        return toast(response, f"{label}: {context['done']} of {len(results)} done.", level)
    context["once"] = uuid4().hex
    return await arender(request, "sandboxes/_bulk.html", context)


BULK_ITEM_SECONDS = 600


async def _bulk_token(user, verb: str, sandbox: daytona.Sandbox) -> str:
    """A one-time token for one sandbox of a confirmed bulk action."""
    token = uuid4().hex
    item = {"user": user.pk, "verb": verb, "id": sandbox.id, "name": sandbox.name}
    await cache.aset(f"sandbar:bulk:{token}", item, BULK_ITEM_SECONDS)
    return token


@require_POST
async def bulk_item(request: HttpRequest) -> HttpResponse:
    """Run one sandbox of a confirmed bulk action, named by its one-time token; JSON answer."""
    user = await request.auser()
    token = request.POST.get("token", "")[:64]
    item = await cache.aget(f"sandbar:bulk:{token}") if token else None
    if item is None:
        message = "This bulk action has expired; select the sandboxes again."
        return JsonResponse({"ok": False, "error": message}, status=410)
    if item["user"] != user.pk:
        raise PermissionDenied
    result = {"id": item["id"], "name": item["name"]}
    if not await cache.aadd(f"sandbar:once:bulk:{token}", 1, BULK_ITEM_SECONDS):
        message = "Already sent: it runs once."
        return JsonResponse(
            {**result, "ok": False, "duplicate": True, "error": message}, status=409
        )
    outcome = await actions.do_bulk_item(request, item["verb"], item["id"], item["name"])
    return JsonResponse({**result, "ok": outcome.ok, "error": outcome.error})
