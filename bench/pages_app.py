"""What bench/pages.py serves: Sandbar's ASGI application, plus one bench-only view.

The floor view goes through the same server, middleware and sign-in check and makes
the same Daytona call through the same client as the sandboxes page, then answers
with the number of sandboxes instead of a page: the time it takes is what serving
any page of that data costs before one byte of HTML is drawn.
"""

from django.http import HttpRequest, HttpResponse
from django.urls import clear_url_caches, path

from dashboard.asgi import application  # sets Django up


async def floor(request: HttpRequest) -> HttpResponse:
    from dashboard import daytona
    from dashboard.sandboxes.forms import SandboxFilterForm

    await request.auser()
    form = SandboxFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponse(status=400)
    found = await daytona.list_sandboxes(form.query())
    return HttpResponse(str(len(found.items)))


def _serve_the_floor() -> None:
    import dashboard.urls

    dashboard.urls.urlpatterns.append(path("bench-floor/", floor))
    clear_url_caches()


_serve_the_floor()
__all__ = ["application"]
