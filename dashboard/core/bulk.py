"""What the bulk actions share: the ids asked for, each item's result, and the report."""

import re
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django_htmx.http import trigger_client_event

from dashboard.core.http import arender, htmx_partial, toast

BULK_LIMIT = 100
_ID = re.compile(r"[A-Za-z0-9._-]{1,255}")


@dataclass(frozen=True)
class BulkResult:
    """One item of a bulk action: done, or refused and why."""

    name: str
    ok: bool
    error: str = ""
    # For a report that links each item to its page; empty where it does not.
    id: str = ""


def bulk_ids(request: HttpRequest) -> list[str]:
    """The well-formed ids posted, each once, at most BULK_LIMIT of them."""
    ids = [i for i in request.POST.getlist("ids") if _ID.fullmatch(i)]
    return list(dict.fromkeys(ids))[:BULK_LIMIT]


async def bulk_report(
    request: HttpRequest, label: str, results: list[BulkResult], list_url: str, changed: str
) -> HttpResponse:
    """ "Delete: 3 of 4 done." with each refusal: a report in the dialog (and the event
    `changed`, so the list reloads), or for a plain form post a message on the list."""
    failed = [r for r in results if not r.ok]
    done = len(results) - len(failed)
    summary = f"{label}: {done} of {len(results)} done."
    if not htmx_partial(request):
        level = messages.error if failed else messages.success
        details = "; ".join(f"{r.name}: {r.error}" for r in failed)
        await sync_to_async(level)(request, f"{summary} {details}".strip())
        return redirect(list_url)
    context = {"label": label, "results": results, "failed": failed, "done": done}
    response = await arender(request, "_bulk_report.html", context)
    trigger_client_event(response, changed)
    return toast(response, summary, "error" if failed else "success")
