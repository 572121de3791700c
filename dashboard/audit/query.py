"""Who reads which entries, the filters as a query, and keyset pages over it.

Pages are cut by seq (the chain's order), never by OFFSET: the page after the
millionth entry costs what the first does. A time range is turned into a seq range
first (entries are written in time order, one writer at a time), so every filter is
read newest first off an index that ends in seq.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db.models import Max, Min, Q, QuerySet

from dashboard.audit.forms import AuditFilterForm
from dashboard.audit.models import AuditEntry

PAGE_SIZE = 50
# Free text is matched by reading entries: a page reads at most this many.
TEXT_WINDOW = 100_000
_CHOICES_SECONDS = 60


def may_read(user: AbstractBaseUser | AnonymousUser) -> bool:
    return user.is_authenticated and user.is_active


def reads_all(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Admins and auditors (accounts grants the permission by role) read every entry."""
    return may_read(user) and user.has_perm("audit.read_all")


def visible_entries(user: AbstractBaseUser | AnonymousUser) -> QuerySet[AuditEntry]:
    """The entries this person may read: all of them, or only their own.

    Someone else's entries tell where they signed in from, what they typed wrong and
    what they did: a member or viewer reads their own trail only.
    """
    if not may_read(user):
        return AuditEntry.objects.none()
    if reads_all(user):
        return AuditEntry.objects.all()
    return AuditEntry.objects.filter(actor_id=user.pk)


def seq_bounds(since: datetime | None, until: datetime | None) -> tuple[int | None, int | None]:
    """The first and last seq written inside the range (None: open on that side).

    An empty range comes back as (1, 0), which matches nothing.
    """
    low = high = None
    if since is not None:
        low = (
            AuditEntry.objects.filter(created_at__gte=since)
            .order_by("created_at")
            .values_list("seq", flat=True)
            .first()
        )
        if low is None:
            return 1, 0
    if until is not None:
        high = (
            AuditEntry.objects.filter(created_at__lte=until)
            .order_by("-created_at")
            .values_list("seq", flat=True)
            .first()
        )
        if high is None:
            return 1, 0
    return low, high


def filtered(entries: QuerySet[AuditEntry], form: AuditFilterForm) -> QuerySet[AuditEntry]:
    """`entries` narrowed by a valid form's filters (not its cursors)."""
    data = form.cleaned_data
    low, high = seq_bounds(*form.time_range())
    if low is not None:
        entries = entries.filter(seq__gte=low)
    if high is not None:
        entries = entries.filter(seq__lte=high)
    if data["actor"]:
        entries = entries.filter(actor_name=data["actor"])
    if data["action"].endswith("."):
        entries = entries.filter(action__startswith=data["action"])
    elif data["action"]:
        entries = entries.filter(action=data["action"])
    if data["target_kind"]:
        entries = entries.filter(target_kind=data["target_kind"])
    if data["target"]:
        entries = entries.filter(Q(target_id=data["target"]) | Q(target_name=data["target"]))
    if data["outcome"]:
        entries = entries.filter(outcome=data["outcome"])
    if data["q"]:
        text = data["q"]
        entries = entries.filter(
            Q(actor_name__icontains=text)
            | Q(action__icontains=text)
            | Q(target_id__icontains=text)
            | Q(target_name__icontains=text)
            | Q(error__icontains=text)
            | Q(client_ip__icontains=text)
            | Q(user_agent__icontains=text)
            | Q(detail__icontains=text)
        )
    return entries


@dataclass(frozen=True)
class Page:
    entries: list[AuditEntry]
    newer: int | None  # cursor for the newer page (`after`), None when this is the newest
    older: int | None  # cursor for the older page (`before`), None when this is the oldest
    # A text search reads a window of seq at a time: the range it read, when it stopped
    # at the window's edge before filling the page.
    searched: tuple[int, int] | None = None

    @property
    def newest_seq(self) -> int:
        return self.entries[0].seq if self.entries else 0


def page_of(
    entries: QuerySet[AuditEntry], before: int | None, after: int | None, window: int = 0
) -> Page:
    """One page, newest first, cut by seq; one more row read tells whether more exist.

    With a `window`, at most that many seq are read for the page (a filter no index
    serves, such as free text, would otherwise read the whole table to find a rare
    match); the cursor then continues from the window's edge.
    """
    if window:
        return _windowed(entries, before, after, window)
    if after is not None:
        rows = list(entries.filter(seq__gt=after).order_by("seq")[: PAGE_SIZE + 1])
        more_newer = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE][::-1]
        older = rows[-1].seq if rows and entries.filter(seq__lt=rows[-1].seq).exists() else None
        return Page(rows, rows[0].seq if more_newer else None, older)
    older_ones = entries if before is None else entries.filter(seq__lt=before)
    rows = list(older_ones.order_by("-seq")[: PAGE_SIZE + 1])
    more_older = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    newer = None
    if before is not None and entries.filter(seq__gte=before).exists():
        newer = before - 1
    return Page(rows, newer, rows[-1].seq if more_older else None)


def _windowed(
    entries: QuerySet[AuditEntry], before: int | None, after: int | None, window: int
) -> Page:
    bounds = AuditEntry.objects.aggregate(low=Min("seq"), high=Max("seq"))
    first, last = bounds["low"] or 0, bounds["high"] or 0
    if after is not None:
        high = after + window
        rows = list(entries.filter(seq__gt=after, seq__lte=high).order_by("seq")[: PAGE_SIZE + 1])
        full = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE][::-1]
        newer = rows[0].seq if full else (high if high < last else None)
        older = (rows[-1].seq if rows else after + 1) if after >= first else None
        searched = None if full or newer is None else (after + 1, high)
        return Page(rows, newer, older, searched)
    top = last + 1 if before is None else before
    low = top - window
    rows = list(entries.filter(seq__lt=top, seq__gte=low).order_by("-seq")[: PAGE_SIZE + 1])
    full = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    older = rows[-1].seq if full else (low if low > first else None)
    newer = top - 1 if before is not None and before <= last else None
    searched = None if full or older is None else (low, top - 1)
    return Page(rows, newer, older, searched)


def new_since(entries: QuerySet[AuditEntry], seq: int) -> tuple[list[AuditEntry], bool]:
    """Entries newer than `seq`, newest first, at most a page; and whether more came."""
    rows = list(entries.filter(seq__gt=seq).order_by("-seq")[: PAGE_SIZE + 1])
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def choices(entries: QuerySet[AuditEntry], field: str) -> list[str]:
    """Distinct values of a column for the filters' suggestions, cached for a minute
    (a DISTINCT over a million rows on every page view is not worth it)."""
    top = AuditEntry.objects.aggregate(top=Max("seq"))["top"] or 0
    scope = hashlib.sha256(str(entries.query).encode()).hexdigest()[:16]
    key = f"audit-choices:{field}:{scope}:{top // 1000}"
    values = cache.get(key)
    if values is None:
        values = sorted(entries.order_by().values_list(field, flat=True).distinct()[:500])
        cache.set(key, values, _CHOICES_SECONDS)
    return values
