"""Sign-in throttling (README, "Security"; docs/security.md has the reasoning).

Three counts of failed sign-ins, each over a window of LOGIN_ATTEMPTS_WINDOW seconds:

- one account from one address: past LOGIN_ATTEMPTS_LIMIT failures, that address may
  not try that account again until the window ends (429);
- one address, whatever the account: past LOGIN_ADDRESS_ATTEMPTS_LIMIT, that address
  may not sign in at all until the window ends (429);
- one account from anywhere: never refused, so nobody can keep someone else locked
  out by knowing their username; past LOGIN_ATTEMPTS_LIMIT failures each further try
  is answered only after a delay that doubles (1 s, 2 s, 4 s, ... up to MAX_DELAY).

An attempt is counted *before* the password is checked, in one transaction that
locks its rows, so sixty simultaneous tries are sixty counts and only the first
ones reach the password check; a successful sign-in gives its count back (so a team
behind one NAT address is not throttled by its own successful sign-ins). Counts live
in the database, so every worker shares them and admins can list and clear them
(Team page).
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from dashboard.accounts.models import SignInThrottle

Scope = SignInThrottle.Scope
MAX_DELAY = 30.0


@dataclass(frozen=True)
class Decision:
    """What to do with one sign-in attempt."""

    retry_after: int = 0  # refused: seconds until this address may try again
    delay: float = 0.0  # allowed, but answered only after this many seconds

    @property
    def refused(self) -> bool:
        return self.retry_after > 0


def _name(username: str) -> str:
    return username.strip().lower()[:150]


def _window() -> timedelta:
    return timedelta(seconds=settings.LOGIN_ATTEMPTS_WINDOW)


def _limit(scope: str) -> int:
    if scope == Scope.ADDRESS:
        return settings.LOGIN_ADDRESS_ATTEMPTS_LIMIT
    return settings.LOGIN_ATTEMPTS_LIMIT


def _row(scope: str, username: str, address: str, now: datetime) -> SignInThrottle:
    """The locked row of one count, restarted if its window is over."""
    row, _ = SignInThrottle.objects.select_for_update().get_or_create(
        scope=scope, username=username, address=address, defaults={"window_start": now}
    )
    over = row.window_start + _window() <= now
    if over and not (row.blocked_until and row.blocked_until > now):
        row.failures, row.window_start, row.blocked_until = 0, now, None
    return row


def delay_for(failures: int) -> float:
    """The slow-down of an account with `failures` failed sign-ins in the window."""
    excess = failures - settings.LOGIN_ATTEMPTS_LIMIT
    return 0.0 if excess < 0 else min(MAX_DELAY, 2.0**excess)


def reserve(address: str, username: str) -> Decision:
    """Count this attempt, before its password is checked; refuse it if over a limit."""
    now = timezone.now()
    name = _name(username)
    with transaction.atomic():
        _prune(now)
        rows = [
            _row(Scope.ADDRESS, "", address, now),
            _row(Scope.ACCOUNT_ADDRESS, name, address, now),
        ]
        blocked = [row.blocked_until for row in rows if row.blocked_until]
        for row in rows:
            if row.failures >= _limit(row.scope) and not row.blocked_until:
                row.blocked_until = row.window_start + _window()
                blocked.append(row.blocked_until)
        if blocked:
            for row in rows:
                row.save()
            return Decision(retry_after=max(1, math.ceil((max(blocked) - now).total_seconds())))
        for row in rows:
            row.failures += 1
            row.save()
        account = _row(Scope.ACCOUNT, name, "", now)
        account.save()
        return Decision(delay=delay_for(account.failures))


def failed(address: str, username: str) -> list[SignInThrottle]:
    """A wrong password: the reservation stands, the account slows down. Returns the
    counts this failure brought to their limit (a throttle starts: worth an audit)."""
    now = timezone.now()
    name = _name(username)
    with transaction.atomic():
        account = _row(Scope.ACCOUNT, name, "", now)
        account.failures += 1
        account.save()
        keys = Q(scope=Scope.ADDRESS, address=address, username="") | Q(
            scope=Scope.ACCOUNT_ADDRESS, address=address, username=name
        )
        rows = [*SignInThrottle.objects.filter(keys), account]
        return [row for row in rows if row.failures == _limit(row.scope)]


def succeeded(address: str, username: str) -> None:
    """A right password: give the reservation back and forget the account's failures."""
    name = _name(username)
    with transaction.atomic():
        SignInThrottle.objects.filter(
            Q(scope=Scope.ACCOUNT_ADDRESS, username=name, address=address)
            | Q(scope=Scope.ACCOUNT, username=name)
        ).delete()
        row = (
            SignInThrottle.objects.select_for_update()
            .filter(scope=Scope.ADDRESS, address=address, username="")
            .first()
        )
        if row is not None and row.failures > 0 and not row.blocked_until:
            row.failures -= 1
            row.save(update_fields=["failures"])


def active(now: datetime | None = None) -> list[SignInThrottle]:
    """Counts that refuse or slow someone down now, for the Team page."""
    now = now or timezone.now()
    rows = SignInThrottle.objects.filter(
        Q(blocked_until__gt=now) | Q(window_start__gt=now - _window())
    ).order_by("-window_start")
    return [
        row
        for row in rows
        if (row.blocked_until and row.blocked_until > now)
        or (row.scope == Scope.ACCOUNT and delay_for(row.failures) > 0)
    ]


def _prune(now: datetime) -> None:
    """Forget counts whose window and block are both over (they would restart anyway)."""
    SignInThrottle.objects.filter(window_start__lt=now - _window()).filter(
        Q(blocked_until__isnull=True) | Q(blocked_until__lt=now)
    ).delete()
