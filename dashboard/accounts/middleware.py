from asgiref.sync import sync_to_async
from django.contrib.auth import middleware
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, resolve_url
from django.utils.http import urlencode
from django_htmx.http import HttpResponseClientRedirect

from dashboard.accounts import second_factor


def second_factor_exempt(view):
    """Reachable by an admin who has yet to set up the second factor the settings require."""
    view.second_factor_exempt = True
    return view


class LoginRequiredMiddleware(middleware.LoginRequiredMiddleware):
    """Every view needs a signed-in user unless marked `@login_not_required`.

    An HTMX request from a signed-out browser gets a client-side redirect to the
    sign-in page, so a login form is never swapped into a fragment.
    """

    async def process_view(self, request, view_func, view_args, view_kwargs):
        # Async so that the user is resolved once, for this check and the view alike.
        if not getattr(view_func, "login_required", True):
            return None
        user = await request.auser()
        # The resolved user, for the view and its templates: `request.user` would
        # otherwise look it up again, synchronously, on first use.
        request.user = user
        if not user.is_authenticated:
            return self.handle_no_permission(request, view_func)
        if await owes_second_factor(user, view_func):
            # An admin without the second factor the settings require: set it up first.
            target = resolve_url("second_factor")
            if getattr(request, "htmx", False):
                return HttpResponseClientRedirect(target)
            return redirect(target)
        return None

    def handle_no_permission(self, request: HttpRequest, view_func) -> HttpResponse:
        if getattr(request, "htmx", False):
            # The page the person is on, not the fragment's URL, is where to return.
            current = request.htmx.current_url_abs_path or "/"
            login = resolve_url(self.get_login_url(view_func))
            return HttpResponseClientRedirect(f"{login}?{urlencode({'next': current})}")
        return super().handle_no_permission(request, view_func)


async def owes_second_factor(user, view_func) -> bool:
    """An admin the settings require to use a second factor, who has none yet."""
    if getattr(view_func, "second_factor_exempt", False):
        return False
    if not second_factor.required_of(user):
        return False
    return not await sync_to_async(second_factor.has_one)(user)
