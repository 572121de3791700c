from django.contrib.auth import middleware
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.utils.http import urlencode
from django_htmx.http import HttpResponseClientRedirect


class LoginRequiredMiddleware(middleware.LoginRequiredMiddleware):
    """Every view needs a signed-in user unless marked `@login_not_required`.

    An HTMX request from a signed-out browser gets a client-side redirect to the
    sign-in page, so a login form is never swapped into a fragment.
    """

    def handle_no_permission(self, request: HttpRequest, view_func) -> HttpResponse:
        if getattr(request, "htmx", False):
            # The page the person is on, not the fragment's URL, is where to return.
            current = request.htmx.current_url_abs_path or "/"
            login = resolve_url(self.get_login_url(view_func))
            return HttpResponseClientRedirect(f"{login}?{urlencode({'next': current})}")
        return super().handle_no_permission(request, view_func)
