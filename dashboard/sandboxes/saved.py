"""Saved views of the sandboxes list: save the current filters under a name, apply, delete.

Each person has their own. A view keeps the list's query string, which is checked by
the list's filter form when saved and again each time it is applied: a view that no
longer holds (the form's rules changed) says why instead of showing an error page.
"""

import unicodedata

from asgiref.sync import sync_to_async
from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from dashboard.accounts.access import sandbox_access
from dashboard.sandboxes.forms import SandboxFilterForm
from dashboard.sandboxes.models import NAME_MAX, QUERY_MAX, VIEWS_PER_PERSON, SavedView

# Paging is where the reader was, not part of what they chose to see.
NOT_SAVED = ("cursor", "trail")


def normalized(params: QueryDict) -> str:
    """The list's filters and sort in `params` as a query string: known fields only, in
    the form's order, no empty values and no paging."""
    kept = QueryDict(mutable=True)
    for name in SandboxFilterForm.base_fields:
        values = [v for v in params.getlist(name) if v.strip()]
        if values and name not in NOT_SAVED:
            kept.setlist(name, values)
    return kept.urlencode()


def query_problem(query: str) -> str:
    """Why the list's filter form refuses `query`, in words; empty if it accepts it."""
    form = SandboxFilterForm(QueryDict(query))
    if form.is_valid():
        return ""
    problems = []
    for name, errors in form.errors.items():
        field = form.fields.get(name)
        label = (field.label or name.replace("_", " ").capitalize()) if field else ""
        problems += [f"{label}: {e}" if label else e for e in errors]
    return " ".join(problems)


class SaveViewForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX, label="Name of this view")
    query = forms.CharField(max_length=QUERY_MAX, required=False)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if any(unicodedata.category(c).startswith("C") for c in name):
            raise forms.ValidationError("A view's name cannot hold control characters.")
        return name

    def clean_query(self) -> str:
        query = normalized(QueryDict(self.cleaned_data["query"]))
        if not query:
            raise forms.ValidationError("Nothing to save yet: choose some filters or a sort first.")
        if len(query) > QUERY_MAX:
            raise forms.ValidationError("These filters are too long to save.")
        problem = query_problem(query)
        if problem:
            raise forms.ValidationError(f"These filters are not valid: {problem}")
        return query


def _list_url(query: str = "") -> str:
    return reverse("sandboxes") + (f"?{query}" if query else "")


def _back(request: HttpRequest) -> str:
    """The list as the form was sent from it, if that query is a valid one."""
    query = normalized(QueryDict(request.POST.get("query", "")[:QUERY_MAX]))
    return _list_url("" if query_problem(query) else query)


async def _person(request: HttpRequest):
    user = await request.auser()
    # Saving a view changes nothing shared: whoever may read the list may keep views of it.
    if not sandbox_access(user).see:
        raise PermissionDenied
    return user


async def saved_views(user) -> list[SavedView]:
    return [view async for view in SavedView.objects.filter(owner=user)]


@require_POST
async def save_view(request: HttpRequest) -> HttpResponse:
    user = await _person(request)
    form = SaveViewForm(request.POST)
    if not form.is_valid():
        problems = [e for errors in form.errors.values() for e in errors]
        message = "The view was not saved. " + " ".join(problems)
        await sync_to_async(messages.error)(request, message)
        return redirect(_back(request))
    name, query = form.cleaned_data["name"], form.cleaned_data["query"]
    existing = await SavedView.objects.filter(owner=user, name=name).afirst()
    if existing is None and await SavedView.objects.filter(owner=user).acount() >= VIEWS_PER_PERSON:
        message = f"You have {VIEWS_PER_PERSON} saved views, the most kept: delete one first."
        await sync_to_async(messages.error)(request, message)
        return redirect(_list_url(query))
    if existing is None:
        await SavedView.objects.acreate(owner=user, name=name, query=query)
        said = f"Saved the view “{name}”."
    else:
        existing.query = query
        await existing.asave(update_fields=["query"])
        said = f"Updated the view “{name}” to these filters."
    await sync_to_async(messages.success)(request, said)
    return redirect(_list_url(query))


async def _own_view(request: HttpRequest, pk: int) -> SavedView:
    user = await _person(request)
    view = await SavedView.objects.filter(owner=user, pk=pk).afirst()
    if view is None:
        raise Http404("No such saved view.")
    return view


@require_GET
async def apply_view(request: HttpRequest, pk: int) -> HttpResponse:
    view = await _own_view(request, pk)
    problem = query_problem(view.query)
    if problem:
        message = (
            f"The saved view “{view.name}” no longer applies: {problem} "
            "Delete it, or set the filters again and save them under the same name."
        )
        await sync_to_async(messages.error)(request, message)
        return redirect(_list_url())
    return redirect(_list_url(view.query))


@require_POST
async def delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    view = await _own_view(request, pk)
    await view.adelete()
    await sync_to_async(messages.success)(request, f"Deleted the view “{view.name}”.")
    return redirect(_back(request))
