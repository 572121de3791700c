"""A person's open sessions: listed on the account page, ended one by one or all but
the current one. Ending a session also ends its open WebSockets (see liveness)."""

from importlib import import_module

from django.conf import settings
from django.contrib.sessions.models import Session
from django.http import HttpRequest
from django.utils import timezone

from dashboard.accounts import liveness
from dashboard.accounts.models import AccountSession, User
from dashboard.core.http import client_ip


def signed_in(sender: type, request: HttpRequest, user: User, **kwargs) -> None:
    key = getattr(getattr(request, "session", None), "session_key", None)
    if not key:
        return
    AccountSession.objects.update_or_create(
        session_key=key,
        defaults={
            "user": user,
            "created_at": timezone.now(),
            "client_ip": client_ip(request)[:64],
            "user_agent": request.headers.get("user-agent", "")[:255],
        },
    )


def signed_out(sender: type, request: HttpRequest, user: User | None, **kwargs) -> None:
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        AccountSession.objects.filter(session_key=key).delete()


def open_sessions(user: User) -> list[AccountSession]:
    """`user`'s sessions that still sign them in, newest first (forgetting the rest)."""
    rows = list(AccountSession.objects.filter(user=user))
    live = set(
        Session.objects.filter(
            session_key__in=[row.session_key for row in rows], expire_date__gt=timezone.now()
        ).values_list("session_key", flat=True)
    )
    gone = [row.pk for row in rows if row.session_key not in live]
    if gone:
        AccountSession.objects.filter(pk__in=gone).delete()
    return [row for row in rows if row.session_key in live]


def end(row: AccountSession) -> None:
    """Sign that session out everywhere: its cookie stops working, its sockets close."""
    import_module(settings.SESSION_ENGINE).SessionStore(row.session_key).delete()
    row.delete()
    liveness.publish(
        liveness.account_group(row.user_id),
        {"type": "account.signed_out", "session": row.session_key},
    )


def connect_signals() -> None:
    from django.contrib.auth.signals import user_logged_in, user_logged_out

    user_logged_in.connect(signed_in, dispatch_uid="sessions.signed_in")
    user_logged_out.connect(signed_out, dispatch_uid="sessions.signed_out")
