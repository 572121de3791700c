from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from dashboard.accounts.access import settings_access


def home(request: HttpRequest) -> HttpResponse:
    return redirect("sandboxes")


@login_not_required
@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for reverse proxies and the run command: no database, no Daytona."""
    return HttpResponse("ok\n", content_type="text/plain")


def connection_settings(request: HttpRequest) -> HttpResponse:
    """Which Daytona this dashboard talks to (never the key itself)."""
    if not settings_access(request.user).see:
        raise PermissionDenied
    embedded = (
        f"http://{settings.ENGINE_HOST}:{settings.ENGINE_PORT}/api" == settings.DAYTONA_API_URL
    )
    key_source = (
        "DAYTONA_API_KEY"
        if settings.DAYTONA_API_KEY
        else f"the embedded engine's key file ({settings.DAYTONA_API_KEY_FILE})"
    )
    return render(
        request,
        "core/settings.html",
        {
            "api_url": settings.DAYTONA_API_URL,
            "embedded": embedded,
            "key_source": key_source,
            "timeout": settings.DAYTONA_TIMEOUT,
            "data_dir": settings.DATA_DIR,
            "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
            "channel_layer": "Redis" if settings.REDIS_URL else "in-memory (one process)",
        },
    )


@login_not_required
def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A forged or stale CSRF token: say so plainly instead of Django's debug page."""
    return render(request, "403_csrf.html", status=403)
