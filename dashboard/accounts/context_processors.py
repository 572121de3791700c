"""The frame's navigation. Here, not in core, because which areas a person sees
follows from their role, and roles are accounts' to know."""

from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from dashboard.accounts.access import settings_access

# (label, url name, icon): the areas, in the order people use them.
NAVIGATION = [
    ("Sandboxes", "sandboxes", "box"),
    ("Snapshots", "snapshots", "layers"),
    ("Volumes", "volumes", "hard-drive"),
    ("Limits", "limits", "gauge"),
    ("Audit", "audit", "scroll-text"),
    ("Team", "team", "users"),
]


def sandbar(request: HttpRequest) -> dict:
    """What every page's frame needs: navigation, the connection, who is signed in."""
    nav = []
    items = list(NAVIGATION)
    if settings_access(request.user).see:
        items.append(("Settings", "settings", "settings"))
    current = request.path
    for label, name, icon in items:
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        nav.append({"label": label, "url": url, "icon": icon, "active": current.startswith(url)})
    return {"nav": nav, "organization_name": settings.DAYTONA_ORGANIZATION_NAME}
