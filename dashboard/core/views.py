from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache


def home(request: HttpRequest) -> HttpResponse:
    return redirect("sandboxes")


@login_not_required
@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for reverse proxies and the run command: no database, no Daytona."""
    return HttpResponse("ok\n", content_type="text/plain")


@login_not_required
def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A forged or stale CSRF token: say so plainly instead of Django's debug page."""
    return render(request, "403_csrf.html", status=403)
