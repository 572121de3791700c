"""Small request helpers shared by every area."""

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.http import trigger_client_event


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


async def arender(
    request: HttpRequest, template: str, context: dict, status: int = 200
) -> HttpResponse:
    """`render` from an async view: rendering reads the session (messages, CSRF), so it
    runs off the event loop."""
    return await sync_to_async(render)(request, template, context, status=status)


def toast(response: HttpResponse, message: str, level: str = "info") -> HttpResponse:
    """Have the page show `message` as a toast when this HTMX response arrives."""
    return trigger_client_event(response, "sandbar:toast", {"message": message, "level": level})
