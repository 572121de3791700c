"""The audit pages: Sandbar's trail (filters, entry detail, export, chain check) and
Daytona's own log. Who reads what is `query.visible_entries`; admins and auditors
(the `audit.*` permissions accounts grants by role) read everything."""

from typing import Any

from asgiref.sync import sync_to_async
from django import forms
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from dashboard import daytona
from dashboard.audit import export, query
from dashboard.audit.forms import MAX_CURSOR, QUICK_RANGES, AuditFilterForm, ExportForm
from dashboard.audit.models import AuditEntry, Outcome
from dashboard.audit.rows import rows_html
from dashboard.audit.trail import anchor, check_chain, record_request
from dashboard.core.http import htmx_partial
from dashboard.core.widgets import drawn_inputs

PAGE_SIZE = query.PAGE_SIZE
# The filters drawn by Django's widgets (the rest are plain inputs in the template).
FILTER_INPUTS = ("range", "since", "until", "target", "outcome", "refresh")
# Keys of `detail` that hold what a change replaced and what it put in its place.
_CHANGE_PAIRS = (("before", "after"), ("old", "new"))


def _reader(user: AbstractBaseUser | AnonymousUser) -> None:
    if not query.may_read(user):
        raise PermissionDenied


def changes(detail: dict) -> list[tuple[str, Any, Any]]:
    """(field, before, after) for an entry that recorded what it changed."""
    for old_key, new_key in _CHANGE_PAIRS:
        if old_key in detail and new_key in detail:
            old, new = detail[old_key], detail[new_key]
            if isinstance(old, dict) and isinstance(new, dict):
                keys = sorted(set(old) | set(new))
                return [(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)]
            return [("value", old, new)]
    return []


def _facts(detail: dict) -> list[tuple[str, Any]]:
    skip = {key for pair in _CHANGE_PAIRS for key in pair if set(pair) <= set(detail)}
    return [(key, value) for key, value in sorted(detail.items()) if key not in skip]


def _dress(entries: list[AuditEntry]) -> list[AuditEntry]:
    for entry in entries:
        entry.changes = changes(entry.detail or {})
        entry.facts = _facts(entry.detail or {})
    return entries


def _errors(form: forms.Form) -> str:
    return " ".join(
        f"{'' if field == '__all__' else field.replace('_', ' ').capitalize() + ': '}{error}"
        for field, errors in form.errors.items()
        for error in errors
    )


def _query_string(request: HttpRequest, *drop: str) -> str:
    params = request.GET.copy()
    for key in drop:
        params.pop(key, None)
    return params.urlencode()


def _chain_status(user: AbstractBaseUser | AnonymousUser) -> dict | None:
    """The last check's result and the retention anchor, for those who may check."""
    if not user.has_perm("audit.verify"):
        return None
    last = AuditEntry.objects.filter(action="audit.verify").order_by("-seq").first()
    return {
        "last": last,
        "anchor": anchor(),
        "retention_days": settings.AUDIT_RETENTION_DAYS,
    }


@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    """Sandbar's trail, newest first, filtered and paged by the query string."""
    _reader(request.user)
    entries = query.visible_entries(request.user)
    form = AuditFilterForm(request.GET)
    status = 200
    page = query.Page([], None, None)
    if form.is_valid():
        data = form.cleaned_data
        window = query.TEXT_WINDOW if data["q"] else 0
        page = query.page_of(
            query.filtered(entries, form), data["before"], data["after"], window=window
        )
    else:
        status = 400
    refresh = form.cleaned_data.get("refresh") if form.is_valid() else None
    reads_all = query.reads_all(request.user)
    context = {
        "form": form,
        "inputs": drawn_inputs(form, FILTER_INPUTS),
        "error": _errors(form) if status == 400 else "",
        "page": page,
        "rows": rows_html(page.entries, request.user.pk, reads_all),
        "query": _query_string(request, "before", "after"),
        "filters": _query_string(request, "before", "after", "refresh"),
        "reads_all": reads_all,
        "may_export": request.user.has_perm("audit.export"),
        # New entries come in at the top, so only the newest page follows them.
        "live": bool(refresh) and page.newer is None,
        "refresh": refresh,
        "quick_ranges": QUICK_RANGES,
        "text_window": query.TEXT_WINDOW,
        "actors": query.choices(entries, "actor_name"),
        "actions": query.choices(entries, "action"),
        "kinds": query.choices(entries, "target_kind"),
        "chain": _chain_status(request.user),
    }
    template = "audit/log.html#results" if htmx_partial(request) else "audit/log.html"
    return render(request, template, context, status=status)


@require_GET
def audit_new(request: HttpRequest) -> HttpResponse:
    """Entries newer than `after` under the same filters: rows the page puts on top."""
    _reader(request.user)
    form = AuditFilterForm(request.GET)
    if not form.is_valid() or form.cleaned_data["after"] is None:
        message = _errors(form) or "Say which entry is the newest shown (after=<seq>)."
        return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")
    entries = query.filtered(query.visible_entries(request.user), form)
    rows, more = query.new_since(entries, form.cleaned_data["after"])
    drawn = rows_html(rows, request.user.pk, query.reads_all(request.user))
    response = HttpResponse("".join(drawn))
    response["X-Audit-Newest"] = str(rows[0].seq if rows else form.cleaned_data["after"])
    response["X-Audit-More"] = "1" if more else "0"
    return response


@require_GET
def audit_entry(request: HttpRequest, seq: int) -> HttpResponse:
    """One entry in full: what changed, where the request came from, its hashes."""
    _reader(request.user)
    # A number past any cursor is no entry (and would overflow SQLite's integer).
    entry = (
        query.visible_entries(request.user).filter(seq=seq).first() if seq <= MAX_CURSOR else None
    )
    if entry is None:
        raise Http404("No such entry, or not one you may read.")
    context = {"entry": _dress([entry])[0], "reads_all": query.reads_all(request.user)}
    # The list opens an entry in place with this fragment.
    template = "audit/_entry_detail.html" if htmx_partial(request) else "audit/entry.html"
    return render(request, template, context)


def _bad_export(message: str) -> HttpResponse:
    return HttpResponse(
        f"Cannot export: {message}\n", status=400, content_type="text/plain; charset=utf-8"
    )


def _start_export(request: HttpRequest) -> tuple[Any, ...] | HttpResponse:
    """Check the request, pin its last entry and record it; or the 400 to answer."""
    if not request.user.has_perm("audit.export"):
        raise PermissionDenied
    form = ExportForm(request.GET)
    if not form.is_valid():
        return _bad_export(_errors(form))
    now = timezone.now()
    since, until = form.time_range(now)
    entries = query.filtered(query.visible_entries(request.user), form)
    top = entries.order_by("-seq").values_list("seq", flat=True).first() or 0
    fmt = form.cleaned_data["format"]
    name = export.file_name(since, until, fmt, now)
    filters = {k: v for k, v in request.GET.items() if k != "format"}
    record_request(
        request,
        "audit.export",
        target_kind="audit",
        target_name=name,
        detail={"format": fmt, "filters": filters, "through_seq": top},
    )
    return entries, fmt, top, name


@require_GET
async def audit_export(request: HttpRequest) -> HttpResponse:
    """The filtered trail as CSV or JSON Lines, streamed; the export is itself recorded."""
    request.user = await request.auser()
    _reader(request.user)
    started = await sync_to_async(_start_export)(request)
    if isinstance(started, HttpResponse):
        return started
    entries, fmt, top, name = started
    response = StreamingHttpResponse(
        export.stream(entries, fmt, top), content_type=export.FORMATS[fmt][0]
    )
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def audit_check(request: HttpRequest) -> HttpResponse:
    """Walk the chain now and record what was found (the page shows the last result)."""
    if not request.user.has_perm("audit.verify"):
        raise PermissionDenied
    report = check_chain()
    record_request(
        request,
        "audit.verify",
        target_kind="audit",
        outcome=Outcome.SUCCESS if report.intact else Outcome.FAILURE,
        error="; ".join(f"#{p.seq}: {p.reason}" for p in report.problems[:5]),
        detail={
            "checked": report.checked,
            "anchor_seq": report.anchor_seq,
            "through_seq": report.through_seq,
            "through_at": report.through_at.isoformat() if report.through_at else None,
            "broken_at": report.problems[0].seq if report.problems else None,
            "problems": len(report.problems),
        },
    )
    return redirect(reverse("audit") + "#chain")


# -- Daytona's own audit log, beside Sandbar's ------------------------------------------


class DaytonaAuditForm(forms.Form):
    """Daytona filters its log by time only; paging is by page number."""

    since = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    limit = forms.TypedChoiceField(
        required=False,
        choices=[(25, "25"), (50, "50"), (100, "100"), (200, "200")],
        coerce=int,
        empty_value=PAGE_SIZE,
        label="Page size",
    )
    page = forms.IntegerField(required=False, min_value=1, max_value=100_000)
    refresh = forms.TypedChoiceField(
        required=False,
        choices=[("", "Off"), (10, "10 s"), (30, "30 s"), (60, "1 min"), (300, "5 min")],
        coerce=int,
        empty_value=None,
        label="Auto-refresh",
    )

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("“Since” must be before “until”.")
        return data


async def _daytona_page(form: DaytonaAuditForm) -> daytona.AuditLogPage:
    data = form.cleaned_data
    organizations = await daytona.list_organizations()
    if not organizations:
        raise daytona.Unavailable("Daytona lists no organization for this API key.")
    return await daytona.audit_log(
        organizations[0].id,
        page=data["page"] or 1,
        limit=data["limit"] or PAGE_SIZE,
        since=data["since"],
        until=data["until"],
    )


@require_GET
async def daytona_audit_log(request: HttpRequest) -> HttpResponse:
    """Daytona's own log (every API call with the key, anyone's): admins and auditors."""
    user = await request.auser()
    _reader(user)
    if not await sync_to_async(query.reads_all)(user):
        raise PermissionDenied
    form = DaytonaAuditForm(request.GET)
    context: dict = {"source": "daytona", "daytona_form": form, "error": "", "log": None}
    context["reads_all"] = True
    status = 200
    if form.is_valid():
        try:
            context["log"] = await _daytona_page(form)
        except daytona.BadRequest as error:
            form.add_error(None, error.message)
            status = 400
        except daytona.Forbidden as error:
            context["error"] = f"The API key may not read Daytona's audit log: {error.message}"
        except daytona.DaytonaError as error:
            context["error"] = error.message
    else:
        status = 400
    query_params = request.GET.copy()
    query_params.pop("page", None)
    context["query"] = query_params.urlencode()
    context["refresh"] = form.cleaned_data.get("refresh") if form.is_valid() else None
    template = "audit/log.html#daytona" if htmx_partial(request) else "audit/log.html"
    return await sync_to_async(render)(request, template, context, status=status)
