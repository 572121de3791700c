from django.http import HttpRequest

from dashboard.connections.active import DEFAULT


def active_connection(request: HttpRequest) -> dict:
    """The header's connection name and switcher (set by ActiveConnectionMiddleware:
    no query here, templates render on the event loop)."""
    return {"daytona_connection": getattr(request, "daytona_connection", DEFAULT)}
