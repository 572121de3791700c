"""Recording and verifying the audit trail. `record` is the one way in.

The trail sits below accounts (which records sign-ins and team changes into it), so
it knows a person only as Django's user, never accounts' model.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.http import HttpRequest
from django.utils import timezone

from dashboard.audit.models import (
    GENESIS_HASH,
    AuditAnchor,
    AuditEntry,
    Outcome,
    delete_through,
)
from dashboard.core.http import client_ip
from dashboard.daytona.client import current_target

log = logging.getLogger(__name__)

_ATTEMPTS = 5

# Sent with `entry=` once an entry is committed: whoever must react to a change
# (open terminals of a sandbox whose owner changed) learns of it where every change
# is written down. Receivers cannot fail the change: they run through send_robust.
recorded = Signal()


def record(
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    *,
    target_kind: str = "",
    target_id: str = "",
    target_name: str = "",
    outcome: str = Outcome.SUCCESS,
    error: str = "",
    client_ip: str = "",
    user_agent: str = "",
    detail: dict | None = None,
    actor_name: str = "",
) -> AuditEntry:
    """Append one entry to the chain and return it; it is committed when this returns."""
    user = actor if isinstance(actor, AbstractBaseUser) else None
    target = current_target()  # the Daytona connection the request aims at; None: the Default
    name = actor_name or (user.get_username() if user else "anonymous")
    for attempt in range(_ATTEMPTS):
        try:
            with transaction.atomic():
                last = AuditEntry.objects.order_by("-seq").only("seq", "hash").first()
                entry = AuditEntry(
                    seq=(last.seq + 1) if last else 1,
                    created_at=timezone.now(),
                    actor=user,
                    actor_name=name[:150],
                    action=action,
                    target_kind=target_kind,
                    target_id=str(target_id)[:255],
                    target_name=str(target_name)[:255],
                    outcome=outcome,
                    error=str(error)[:4000],
                    client_ip=client_ip[:64],
                    user_agent=user_agent[:255],
                    connection=target.name[:64] if target else "",
                    detail=detail or {},
                    prev_hash=last.hash if last else GENESIS_HASH,
                )
                entry.hash = entry.compute_hash()
                entry.save()
                transaction.on_commit(partial(_announce, entry))
                return entry
        except IntegrityError:
            # Another writer took this seq first; build on top of its entry.
            if attempt == _ATTEMPTS - 1:
                raise
            log.info("audit chain race on seq, retrying")
    raise AssertionError("unreachable")


def _announce(entry: AuditEntry) -> None:
    for receiver, result in recorded.send_robust(sender=AuditEntry, entry=entry):
        if isinstance(result, Exception):
            log.warning("audit receiver %s failed: %s", receiver, result)


def record_request(request: HttpRequest, action: str, **fields) -> AuditEntry:
    """`record` with the actor, client address and user agent taken from the request."""
    agent = request.headers.get("User-Agent", "")
    return record(request.user, action, client_ip=client_ip(request), user_agent=agent, **fields)


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    reason: str


@dataclass(frozen=True)
class ChainReport:
    """One run of the check: how far the chain holds, from where, and where it breaks."""

    checked: int
    anchor_seq: int  # 0: from the first entry ever written
    through_seq: int  # the last entry that verified (0 if none)
    through_at: datetime | None
    problems: tuple[ChainProblem, ...]

    @property
    def intact(self) -> bool:
        return not self.problems


def anchor() -> AuditAnchor | None:
    """The newest anchor, or None when nothing was ever pruned."""
    return AuditAnchor.objects.order_by("-seq").first()


def verify_chain(batch_size: int = 2000) -> Iterator[ChainProblem]:
    """Yield every place where the stored chain does not hold."""
    for item in _walk(batch_size):
        if isinstance(item, ChainProblem):
            yield item


def check_chain(batch_size: int = 2000, max_problems: int = 100) -> ChainReport:
    """Walk the whole kept chain and say how far it holds (for the page and the command)."""
    start = anchor()
    checked, through, problems = 0, None, []
    for item in _walk(batch_size):
        if isinstance(item, ChainProblem):
            if len(problems) < max_problems:
                problems.append(item)
            continue
        checked += 1
        if not problems:
            through = item
    return ChainReport(
        checked=checked,
        anchor_seq=start.seq if start else 0,
        through_seq=through.seq if through else (start.seq if start else 0),
        through_at=through.created_at if through else None,
        problems=tuple(problems),
    )


def _walk(batch_size: int) -> Iterator[AuditEntry | ChainProblem]:
    """Each kept entry in order, each preceded by the problems found at it.

    From the newest anchor when entries were pruned: the first kept entry must follow
    the last pruned one (its seq and hash), so removing more than retention did shows.
    """
    start = anchor()
    expected_prev = start.hash if start else GENESIS_HASH
    expected_seq = start.seq + 1 if start else 1
    last_seq = start.seq if start else 0
    queryset = AuditEntry.objects.order_by("seq")
    while True:
        batch = list(queryset.filter(seq__gt=last_seq)[:batch_size])
        if not batch:
            return
        for entry in batch:
            if entry.seq != expected_seq:
                yield ChainProblem(
                    entry.seq, f"expected entry #{expected_seq}: entries are missing"
                )
            if entry.prev_hash != expected_prev:
                yield ChainProblem(entry.seq, "does not follow the entry before it")
            if entry.compute_hash() != entry.hash:
                yield ChainProblem(entry.seq, "its content does not match its hash")
            yield entry
            expected_prev = entry.hash
            expected_seq = entry.seq + 1
            last_seq = entry.seq


def prune(days: int, now: datetime | None = None) -> AuditAnchor | None:
    """Remove entries older than `days`, keeping an anchor at the last one removed.

    The anchor and the removal are one transaction, and the pruning itself is recorded
    in the trail (the newest entries are never pruned, so the chain never empties).
    Returns the new anchor, or None when nothing was old enough.
    """
    cutoff = (now or timezone.now()) - timedelta(days=days)
    newest = AuditEntry.objects.order_by("-seq").only("seq").first()
    with transaction.atomic():
        last = (
            AuditEntry.objects.filter(created_at__lt=cutoff)
            .exclude(seq=newest.seq if newest else 0)
            .order_by("-seq")
            .only("seq", "hash", "created_at")
            .first()
        )
        if last is None:
            return None
        removed = delete_through(last.seq)
        made = AuditAnchor.objects.create(
            seq=last.seq,
            hash=last.hash,
            created_at=last.created_at,
            pruned_at=timezone.now(),
            pruned=removed,
        )
    record(
        None,
        "audit.prune",
        actor_name="retention",
        target_kind="audit",
        target_id=str(last.seq),
        detail={
            "days": days,
            "removed": removed,
            "anchor_seq": last.seq,
            "anchor_hash": last.hash,
            "anchor_time": last.created_at.isoformat(),
        },
    )
    return made
