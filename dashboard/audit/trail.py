"""Recording and verifying the audit trail. `record` is the one way in.

The trail sits below accounts (which records sign-ins and team changes into it), so
it knows a person only as Django's user, never accounts' model.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.http import HttpRequest
from django.utils import timezone

from dashboard.audit.models import GENESIS_HASH, AuditEntry, Outcome
from dashboard.core.http import client_ip

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
    detail: dict | None = None,
    actor_name: str = "",
) -> AuditEntry:
    """Append one entry to the chain and return it; it is committed when this returns."""
    user = actor if isinstance(actor, AbstractBaseUser) else None
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
    """`record` with the actor and client address taken from the request."""
    return record(request.user, action, client_ip=client_ip(request), **fields)


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    reason: str


def verify_chain(batch_size: int = 2000) -> Iterator[ChainProblem]:
    """Yield every place where the stored chain does not hold."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    queryset = AuditEntry.objects.order_by("seq")
    last_seq = 0
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
            expected_prev = entry.hash
            expected_seq = entry.seq + 1
            last_seq = entry.seq
