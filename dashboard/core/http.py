"""Small request helpers shared by every area."""

from django.conf import settings
from django.http import HttpRequest


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
