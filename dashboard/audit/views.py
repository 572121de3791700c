from asgiref.sync import sync_to_async
from django import forms
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard import daytona
from dashboard.audit.forms import AuditFilterForm
from dashboard.audit.models import AuditEntry, Outcome
from dashboard.core.http import htmx_partial

PAGE_SIZE = 50


def _may_read(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Every signed-in person reads both logs. Decided here, not in accounts.access:
    the trail sits below accounts, which records into it."""
    return user.is_authenticated and user.is_active


def _sees_everything(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Admins see every entry and address; the rest see their own sign-in trouble only."""
    return bool(getattr(user, "is_admin", False))


def visible_entries(user: AbstractBaseUser | AnonymousUser) -> QuerySet[AuditEntry]:
    """The entries this person may read.

    Failed sign-ins and throttles carry the name someone typed (at times a password
    typed in the wrong box) and where they came from: only admins read other people's.
    """
    entries = AuditEntry.objects.all()
    if _sees_everything(user):
        return entries
    trouble = Q(action__startswith="auth.") & ~Q(outcome=Outcome.SUCCESS)
    throttles = Q(action__startswith="auth.throttle")
    return entries.exclude((trouble | throttles) & ~Q(actor_id=user.pk))


def audit_log(request: HttpRequest) -> HttpResponse:
    """The dashboard's audit trail, newest first, filtered by the query string."""
    if not _may_read(request.user):
        raise PermissionDenied
    entries = visible_entries(request.user)
    actions = list(entries.order_by().values_list("action", flat=True).distinct())
    form = AuditFilterForm(request.GET, actions=actions)
    status = 200
    if form.is_valid():
        data = form.cleaned_data
        if data["actor"]:
            entries = entries.filter(actor_name__iexact=data["actor"])
        if data["action"].endswith("."):
            entries = entries.filter(action__startswith=data["action"])
        elif data["action"]:
            entries = entries.filter(action=data["action"])
        if data["target"]:
            entries = entries.filter(
                Q(target_id=data["target"]) | Q(target_name__iexact=data["target"])
            )
        if data["outcome"]:
            entries = entries.filter(outcome=data["outcome"])
        if data["since"]:
            entries = entries.filter(created_at__gte=data["since"])
        if data["until"]:
            entries = entries.filter(created_at__lte=data["until"])
        page_number = data["page"] or 1
    else:
        entries, page_number, status = entries.none(), 1, 400
    paginator = Paginator(entries.order_by("-seq"), PAGE_SIZE)
    page = paginator.get_page(page_number)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "all_addresses": _sees_everything(request.user),
    }
    template = "audit/log.html#results" if htmx_partial(request) else "audit/log.html"
    return render(request, template, context, status=status)


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
    """Daytona's own audit log (every API call with its key), newest first."""
    user = await request.auser()
    if not _may_read(user):
        raise PermissionDenied
    form = DaytonaAuditForm(request.GET)
    context: dict = {"source": "daytona", "daytona_form": form, "error": "", "log": None}
    # Calls come from people's machines too (SDK users of the same organization).
    context["all_addresses"] = _sees_everything(user)
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
    query = request.GET.copy()
    query.pop("page", None)
    context["query"] = query.urlencode()
    context["refresh"] = form.cleaned_data.get("refresh") if form.is_valid() else None
    template = "audit/log.html#daytona" if htmx_partial(request) else "audit/log.html"
    return await sync_to_async(render)(request, template, context, status=status)
