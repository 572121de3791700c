import asyncio
import time

from asgiref.sync import sync_to_async
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from dashboard.accounts import ratelimit, second_factor
from dashboard.accounts import sessions as account_sessions
from dashboard.accounts.access import settings_access, team_access
from dashboard.accounts.actions import (
    TeamChangeRefused,
    active_connection,
    do_change_role,
    do_create_person,
    do_invite,
    do_set_active,
    do_set_quota,
)
from dashboard.accounts.forms import ActiveForm, PersonForm, QuotaForm, RoleForm, SignInForm
from dashboard.accounts.middleware import second_factor_exempt
from dashboard.accounts.models import (
    ROLE_HELP,
    AccountSession,
    ConnectionQuota,
    Role,
    SecondFactor,
    SignInThrottle,
    User,
)
from dashboard.audit.models import Outcome
from dashboard.audit.trail import record, record_request
from dashboard.core.http import client_ip, htmx_partial


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return reverse_lazy("home")


@login_not_required
@require_http_methods(["GET", "POST"])
async def sign_in(request: HttpRequest) -> HttpResponse:
    """The sign-in form. A POST is counted before its password is checked, and waits
    out its account's slow-down here, on the event loop, holding no thread."""
    decision = ratelimit.Decision()
    if request.method == "POST" and not (await request.auser()).is_authenticated:
        ip = client_ip(request)
        username = request.POST.get("username", "")[:150]
        decision = await sync_to_async(ratelimit.reserve)(ip, username)
        if decision.delay:
            await asyncio.sleep(decision.delay)
    return await sync_to_async(_sign_in)(request, decision)


def _sign_in(request: HttpRequest, decision: ratelimit.Decision) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(_next_url(request))
    form = SignInForm(request, data=request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        ip = client_ip(request)
        username = request.POST.get("username", "")[:150]
        if decision.refused:
            record(
                None,
                "auth.sign_in",
                outcome=Outcome.DENIED,
                client_ip=ip,
                error="too many failed attempts",
                actor_name=username or "anonymous",
            )
            form.errors.clear()
            minutes = max(1, round(decision.retry_after / 60))
            form.add_error(
                None,
                "Too many failed sign-in attempts from this address. "
                f"Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
            )
            response = render(
                request,
                "accounts/sign_in.html",
                {"form": form, "next": _next_url(request)},
                status=429,
            )
            response["Retry-After"] = str(decision.retry_after)
            return response
        if form.is_valid():
            user = form.get_user()
            ratelimit.succeeded(ip, username)
            if second_factor.has_one(user):
                # Not signed in yet: the code comes first (sign_in_code).
                request.session[second_factor.PENDING_KEY] = {
                    "user": user.pk,
                    "backend": user.backend,
                    "at": time.time(),
                    "next": str(_next_url(request)),
                }
                return redirect("sign_in_code")
            login(request, user)
            record_request(request, "auth.sign_in")
            return redirect(_next_url(request))
        for throttle in ratelimit.failed(ip, username):
            record(
                None,
                "auth.throttle",
                outcome=Outcome.DENIED,
                client_ip=ip,
                actor_name=username or "anonymous",
                target_kind="throttle",
                target_name=str(throttle),
                detail={"scope": throttle.scope, "failures": throttle.failures},
            )
        reason = "; ".join(form.non_field_errors()) or "missing username or password"
        known = User.objects.filter(username=username).first()
        record(
            known,
            "auth.sign_in",
            outcome=Outcome.FAILURE,
            client_ip=ip,
            error=reason,
            actor_name=username or "anonymous",
        )
        status = 400
    return render(
        request, "accounts/sign_in.html", {"form": form, "next": _next_url(request)}, status=status
    )


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code from your authenticator app",
        max_length=10,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


def _pending(request: HttpRequest) -> tuple[User, dict] | None:
    """The person who gave the right password and owes a code, if still in time."""
    pending = request.session.get(second_factor.PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > (
        second_factor.PENDING_SECONDS
    ):
        return None
    user = User.objects.filter(pk=pending.get("user"), is_active=True).first()
    return (user, pending) if user is not None else None


@login_not_required
@require_http_methods(["GET", "POST"])
async def sign_in_code(request: HttpRequest) -> HttpResponse:
    """The second step of a sign-in with an authenticator: throttled like the first."""
    pending = await sync_to_async(_pending)(request)
    decision = ratelimit.Decision()
    if pending is not None and request.method == "POST":
        decision = await sync_to_async(ratelimit.reserve)(
            client_ip(request), f"{pending[0].username}#code"
        )
        if decision.delay:
            await asyncio.sleep(decision.delay)
    return await sync_to_async(_sign_in_code)(request, pending, decision)


def _sign_in_code(
    request: HttpRequest, pending: tuple[User, dict] | None, decision: ratelimit.Decision
) -> HttpResponse:
    if pending is None:
        request.session.pop(second_factor.PENDING_KEY, None)
        messages.info(request, "Sign in again: the code was not entered in time.")
        return redirect("login")
    user, data = pending
    form = CodeForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        ip, key = client_ip(request), f"{user.username}#code"
        if decision.refused:
            form.add_error(None, "Too many wrong codes. Wait a few minutes, then sign in again.")
            record(
                user, "auth.sign_in", outcome=Outcome.DENIED, client_ip=ip, error="too many codes"
            )
            status = 429
        elif form.is_valid() and second_factor.verify(user, form.cleaned_data["code"]):
            ratelimit.succeeded(ip, key)
            del request.session[second_factor.PENDING_KEY]
            login(request, user, backend=data["backend"])
            record_request(request, "auth.sign_in", detail={"second_factor": "totp"})
            return redirect(data.get("next") or "home")
        else:
            ratelimit.failed(ip, key)
            form.add_error(None, "That code is not right (or was used already). Try the next one.")
            record(
                user,
                "auth.sign_in",
                outcome=Outcome.FAILURE,
                client_ip=ip,
                error="wrong authenticator code",
            )
            status = 400
    response = render(request, "accounts/sign_in_code.html", {"form": form}, status=status)
    if status == 429:
        response["Retry-After"] = str(decision.retry_after)
    return response


@second_factor_exempt
@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    record_request(request, "auth.sign_out")
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect("login")


class SetPasswordView(auth_views.PasswordResetConfirmView):
    """Where an invited person (or one given a new link) chooses their password."""

    template_name = "accounts/set_password.html"
    success_url = reverse_lazy("login")
    post_reset_login = False

    def form_valid(self, form):
        response = super().form_valid(form)
        record(
            form.user,
            "auth.set_password",
            target_kind="user",
            target_id=str(form.user.pk),
            target_name=form.user.username,
            client_ip=client_ip(self.request),
        )
        messages.success(self.request, "Your password is set. Sign in with it now.")
        return response


set_password = login_not_required(SetPasswordView.as_view())


class ChangePasswordView(auth_views.PasswordChangeView):
    template_name = "accounts/account.html"
    success_url = reverse_lazy("account")

    def form_valid(self, form):
        response = super().form_valid(form)
        record_request(
            self.request,
            "auth.change_password",
            target_kind="user",
            target_id=str(self.request.user.pk),
            target_name=self.request.user.username,
        )
        messages.success(self.request, "Your password has been changed.")
        return response

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            role_help=ROLE_HELP.get(self.request.user.role),
            sessions=account_sessions.open_sessions(self.request.user),
            current_session=self.request.session.session_key,
            second_factor=second_factor.has_one(self.request.user),
            **kwargs,
        )


account = ChangePasswordView.as_view()


def _team_context(request: HttpRequest, **extra) -> dict:
    people = list(User.objects.order_by("-is_active", "username"))
    connection_id, connection_name = active_connection(request)
    quotas = {q.user_id: q for q in ConnectionQuota.objects.filter(connection_id=connection_id)}
    for person in people:
        # Unsaved when they have none: every field empty, no limit.
        person.quota = quotas.get(person.pk) or ConnectionQuota(user=person)
    return {
        "people": people,
        "quota_connection": connection_name,
        "access": team_access(request.user),
        "roles": Role.choices,
        "role_help": ROLE_HELP,
        "admin_count": sum(p.role == Role.ADMIN and p.is_active for p in people),
        "throttles": ratelimit.active() if team_access(request.user).act else [],
        **extra,
    }


def team(request: HttpRequest) -> HttpResponse:
    """Everyone on the team, with their roles; admins change them here."""
    if not team_access(request.user).see:
        raise PermissionDenied
    return render(request, "accounts/team.html", _team_context(request, form=PersonForm()))


def _require_team_admin(request: HttpRequest) -> None:
    if not team_access(request.user).act:
        record_request(request, "team.change", outcome=Outcome.DENIED, error="not an admin")
        raise PermissionDenied("Only admins can change the team.")


@require_POST
def add_person(request: HttpRequest) -> HttpResponse:
    _require_team_admin(request)
    form = PersonForm(request.POST)
    context = {}
    if form.is_valid():
        invitation = do_create_person(request, form.save(commit=False))
        context["invitation"] = invitation
        form = PersonForm()
    template = "accounts/team.html#team" if htmx_partial(request) else "accounts/team.html"
    return render(request, template, _team_context(request, form=form, **context))


def _team_change(request: HttpRequest, pk: int, change, done: str) -> HttpResponse:
    _require_team_admin(request)
    person = get_object_or_404(User, pk=pk)
    error = ""
    try:
        result = change(person)
    except TeamChangeRefused as refused:
        error, result = str(refused), None
    context = {"invitation": result} if result else {}
    if error:
        context["error"] = error
    if not htmx_partial(request):
        if error:
            messages.error(request, error)
        else:
            messages.success(request, done.format(person=person.username))
        return redirect("team")
    response = render(
        request, "accounts/team.html#team", _team_context(request, form=PersonForm(), **context)
    )
    if not error:
        trigger_client_event(
            response,
            "sandbar:toast",
            {"message": done.format(person=person.username), "level": "success"},
        )
    return response


def _bad_form(request: HttpRequest, form) -> HttpResponse:
    message = " ".join(str(e) for errors in form.errors.values() for e in errors)
    if htmx_partial(request):
        return render(
            request,
            "accounts/team.html#team",
            _team_context(request, form=PersonForm(), error=message),
            status=400,
        )
    messages.error(request, message)
    return redirect("team")


@require_POST
def change_role(request: HttpRequest, pk: int) -> HttpResponse:
    _require_team_admin(request)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _bad_form(request, form)
    return _team_change(
        request,
        pk,
        lambda person: do_change_role(request, person, form.cleaned_data["role"]),
        "Saved the role of {person}.",
    )


@require_POST
def set_active(request: HttpRequest, pk: int) -> HttpResponse:
    _require_team_admin(request)
    form = ActiveForm(request.POST)
    if not form.is_valid():
        return _bad_form(request, form)
    active = form.cleaned_data["active"]
    return _team_change(
        request,
        pk,
        lambda person: do_set_active(request, person, active),
        "Reactivated {person}." if active else "Deactivated {person}; their sessions have ended.",
    )


@require_POST
def invite(request: HttpRequest, pk: int) -> HttpResponse:
    return _team_change(
        request, pk, lambda person: do_invite(request, person), "Made a new link for {person}."
    )


@require_POST
def set_quota(request: HttpRequest, pk: int) -> HttpResponse:
    _require_team_admin(request)
    person = get_object_or_404(User, pk=pk)
    form = QuotaForm(request.POST, instance=ConnectionQuota(user=person))
    if not form.is_valid():
        return _bad_form(request, form)
    values = {name: form.cleaned_data[name] for name in form.Meta.fields}
    return _team_change(
        request,
        pk,
        lambda person: do_set_quota(request, person, values),
        "Saved the quota of {person}.",
    )


@require_POST
def clear_throttle(request: HttpRequest, pk: int) -> HttpResponse:
    """An admin lets an address (or an account) sign in again at once."""
    _require_team_admin(request)
    throttle = get_object_or_404(SignInThrottle, pk=pk)
    throttle.delete()
    record_request(
        request,
        "auth.throttle_clear",
        target_kind="throttle",
        target_name=str(throttle),
        detail={
            "scope": throttle.scope,
            "username": throttle.username,
            "address": throttle.address,
            "failures": throttle.failures,
        },
    )
    messages.success(request, f"Cleared the sign-in throttle of {throttle}.")
    return redirect(f"{reverse('team')}#throttles")


def _end_sessions(request: HttpRequest, rows: list[AccountSession]) -> None:
    for row in rows:
        account_sessions.end(row)
        record_request(
            request,
            "auth.session_end",
            target_kind="user",
            target_id=str(request.user.pk),
            target_name=request.user.username,
            detail={"client_ip": row.client_ip, "signed_in": row.created_at.isoformat()},
        )


@require_POST
def end_session(request: HttpRequest, pk: int) -> HttpResponse:
    """Sign out one of one's other sessions (a lost laptop, a shared computer)."""
    row = get_object_or_404(AccountSession, pk=pk, user=request.user)
    if row.session_key == request.session.session_key:
        messages.error(request, "That is this browser: use Sign out instead.")
        return redirect(f"{reverse('account')}#sessions")
    _end_sessions(request, [row])
    messages.success(request, "That session is signed out.")
    return redirect(f"{reverse('account')}#sessions")


@require_POST
def end_other_sessions(request: HttpRequest) -> HttpResponse:
    """Sign out every session of one's own but this one."""
    others = [
        row
        for row in account_sessions.open_sessions(request.user)
        if row.session_key != request.session.session_key
    ]
    _end_sessions(request, others)
    count = len(others)
    messages.success(request, f"Signed out {count} other session{'s' if count != 1 else ''}.")
    return redirect(f"{reverse('account')}#sessions")


class TurnOffForm(forms.Form):
    password = forms.CharField(label="Your password", widget=forms.PasswordInput)
    code = CodeForm.base_fields["code"]


@second_factor_exempt
@require_http_methods(["GET", "POST"])
def second_factor_settings(request: HttpRequest) -> HttpResponse:
    """Set up an authenticator app (scan, type a code) or turn it off."""
    user = request.user
    enabled = second_factor.has_one(user)
    required = second_factor.required_of(user)
    if enabled:
        form = TurnOffForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            if required:
                form.add_error(None, "Admins must keep a second factor here.")
            elif not user.check_password(form.cleaned_data["password"]):
                form.add_error("password", "That is not your password.")
            elif not second_factor.verify(user, form.cleaned_data["code"]):
                form.add_error("code", "That code is not right (or was used already).")
            else:
                SecondFactor.objects.filter(user=user).delete()
                _audit_self(request, "auth.second_factor_off")
                messages.success(request, "Sign-in no longer asks for a code.")
                return redirect("account")
        context = {"enabled": True, "form": form, "required": required}
        status = 400 if form.errors else 200
        return render(request, "accounts/second_factor.html", context, status=status)
    secret = request.session.get("sandbar_new_factor") or second_factor.new_secret()
    request.session["sandbar_new_factor"] = secret
    form = CodeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        if second_factor.enable(user, secret, form.cleaned_data["code"]):
            del request.session["sandbar_new_factor"]
            _audit_self(request, "auth.second_factor_on")
            messages.success(request, "From now on, sign-in asks for a code from your app.")
            return redirect("account")
        form.add_error(
            "code", "That code does not match: check the app's clock, and type the current one."
        )
    uri = second_factor.setup_uri(user, secret)
    context = {
        "enabled": False,
        "form": form,
        "required": required,
        "secret": secret,
        "qr": second_factor.qr_data_uri(uri),
    }
    return render(
        request, "accounts/second_factor.html", context, status=400 if form.errors else 200
    )


def _audit_self(request: HttpRequest, action: str) -> None:
    record_request(
        request,
        action,
        target_kind="user",
        target_id=str(request.user.pk),
        target_name=request.user.username,
    )


# -- Which Daytona this is (admins only) --------------------------------------------------


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
        "accounts/settings.html",
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
