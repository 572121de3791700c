from functools import partial

from asgiref.sync import sync_to_async
from django.contrib.auth import middleware
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.utils.http import urlencode
from django_htmx.http import HttpResponseClientRedirect

from dashboard.core.middleware import InlineHooks


async def _auser(request: HttpRequest):
    """The signed-in user, resolved once per request: the session and the user row are
    read in one thread round trip (Django's `auser` takes two), and `request.user`
    shares the result instead of querying again when a template asks."""
    if not hasattr(request, "_acached_user"):
        request._acached_user = await sync_to_async(middleware.get_user)(request)
    return request._acached_user


class AuthenticationMiddleware(InlineHooks, middleware.AuthenticationMiddleware):
    """Django's, with `request.auser` as above and its hook on the event loop."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        request.auser = partial(_auser, request)


class LoginRequiredMiddleware(middleware.LoginRequiredMiddleware):
    """Every view needs a signed-in user unless marked `@login_not_required`.

    An HTMX request from a signed-out browser gets a client-side redirect to the
    sign-in page, so a login form is never swapped into a fragment.
    """

    async def process_view(self, request, view_func, view_args, view_kwargs):
        # Async so that the user is resolved once, for this check and the view alike.
        if not getattr(view_func, "login_required", True):
            return None
        if (await request.auser()).is_authenticated:
            return None
        return self.handle_no_permission(request, view_func)

    def handle_no_permission(self, request: HttpRequest, view_func) -> HttpResponse:
        if getattr(request, "htmx", False):
            # The page the person is on, not the fragment's URL, is where to return.
            current = request.htmx.current_url_abs_path or "/"
            login = resolve_url(self.get_login_url(view_func))
            return HttpResponseClientRedirect(f"{login}?{urlencode({'next': current})}")
        return super().handle_no_permission(request, view_func)
