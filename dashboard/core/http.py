"""Small request helpers shared by every area."""

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.utils.functional import SimpleLazyObject
from django_htmx.http import trigger_client_event

from dashboard import daytona


def client_ip(request: HttpRequest) -> str:
    """The address the request came from; X-Forwarded-For only behind a trusted proxy."""
    if settings.BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            # The proxy appends the address it saw: the last entry is the one it vouches for.
            return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def htmx_partial(request: HttpRequest) -> bool:
    """An HTMX request that wants a fragment, not a boosted full page."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted


def session_loaded(request: HttpRequest) -> bool:
    """Whether reading or writing the session now costs no query (or there is none)."""
    session = getattr(request, "session", None)
    return session is None or session.accessed


def _renders_here(request: HttpRequest) -> bool:
    """Whether rendering for `request` can no longer query: its session is loaded and its
    user resolved (every signed-in page: the login check sets `request.user`)."""
    # isinstance looks at the wrapper's own type first, so it does not resolve the user.
    user_resolved = not isinstance(getattr(request, "user", None), SimpleLazyObject)
    return session_loaded(request) and user_resolved


async def arender(
    request: HttpRequest, template: str, context: dict, status: int = 200
) -> HttpResponse:
    """`render` from an async view, on the terms of `arender_to_string`."""
    return HttpResponse(await arender_to_string(request, template, context), status=status)


async def arender_to_string(request: HttpRequest, template: str, context: dict) -> str:
    """`render_to_string` from an async view.

    Rendering reads the session (messages), the user and the CSRF cookie. Once those
    are in memory it renders right here on the event loop; otherwise in a thread,
    where loading them may query.
    """
    if _renders_here(request):
        return render_to_string(template, context, request)
    return await sync_to_async(render_to_string)(template, context, request)


def toast(response: HttpResponse, message: str, level: str = "info") -> HttpResponse:
    """Have the page show `message` as a toast when this HTMX response arrives."""
    return trigger_client_event(response, "sandbar:toast", {"message": message, "level": level})


async def lookup_failed(
    request: HttpRequest, error: daytona.DaytonaError, gone: str, list_url: str
) -> HttpResponse:
    """The answer when the object an action is on cannot be fetched from Daytona.

    Gone: a fragment request gets a 404 and the `gone` toast; a page goes back to
    `list_url` with `gone` as its message. Daytona failing: a 503 and its message.
    """
    if isinstance(error, daytona.NotFound):
        if not htmx_partial(request):
            await sync_to_async(messages.error)(request, gone)
            return redirect(list_url)
        return toast(HttpResponse(gone, status=404), gone, "error")
    return toast(HttpResponse(error.message, status=503), error.message, "error")


def status_for(error: daytona.DaytonaError) -> int:
    """The status Sandbar answers with when Daytona refused or failed an action."""
    for kind, status in (
        (daytona.NotFound, 404),
        (daytona.Conflict, 409),
        (daytona.QuotaExceeded, 429),
        (daytona.Forbidden, 403),
        (daytona.Unavailable, 503),
    ):
        if isinstance(error, kind):
            return status
    return 400
