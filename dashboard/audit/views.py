from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard.accounts.access import audit_access
from dashboard.audit.forms import AuditFilterForm
from dashboard.audit.models import AuditEntry
from dashboard.core.http import htmx_partial

PAGE_SIZE = 50


def audit_log(request: HttpRequest) -> HttpResponse:
    """The dashboard's audit trail, newest first, filtered by the query string."""
    if not audit_access(request.user).see:
        raise PermissionDenied
    form = AuditFilterForm(request.GET)
    entries = AuditEntry.objects.select_related(None)
    status = 200
    if form.is_valid():
        data = form.cleaned_data
        if data["actor"]:
            entries = entries.filter(actor_name__iexact=data["actor"])
        if data["action"]:
            entries = entries.filter(action__startswith=data["action"])
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
    context = {"form": form, "page": page, "query": query.urlencode()}
    template = "audit/log.html#results" if htmx_partial(request) else "audit/log.html"
    return render(request, template, context, status=status)
