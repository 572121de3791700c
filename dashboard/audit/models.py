"""The dashboard's own audit trail: append-only, each entry chained to the last by hash."""

import hashlib
import json

from django.conf import settings
from django.db import models


class AppendOnlyError(RuntimeError):
    """Raised on any attempt to change or remove an audit entry."""


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("audit entries cannot be changed")

    def delete(self):
        raise AppendOnlyError("audit entries cannot be deleted")

    def bulk_update(self, *args, **kwargs):
        raise AppendOnlyError("audit entries cannot be changed")


class Outcome(models.TextChoices):
    SUCCESS = "success", "Succeeded"
    FAILURE = "failure", "Failed"
    DENIED = "denied", "Denied"


GENESIS_HASH = "0" * 64


class AuditEntry(models.Model):
    """One action someone took through the dashboard, and how it ended."""

    # seq is unique, so two writers racing for the same place in the chain
    # cannot both succeed: the loser retries on top of the winner.
    seq = models.PositiveBigIntegerField(unique=True, editable=False)
    # Indexed for turning a time range into a range of seq (see query.seq_bounds).
    created_at = models.DateTimeField(editable=False, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too: the record must read the same after the account is renamed.
    actor_name = models.CharField(max_length=150, editable=False)
    action = models.CharField(max_length=64, editable=False)
    target_kind = models.CharField(max_length=32, blank=True, editable=False)
    target_id = models.CharField(max_length=255, blank=True, editable=False)
    target_name = models.CharField(max_length=255, blank=True, editable=False)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, editable=False)
    error = models.TextField(blank=True, editable=False)
    client_ip = models.CharField(max_length=64, blank=True, editable=False)
    user_agent = models.CharField(max_length=255, blank=True, editable=False)
    # The Daytona connection in use (its name then); blank: the Default.
    connection = models.CharField(max_length=64, blank=True, editable=False)
    detail = models.JSONField(default=dict, blank=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        verbose_name_plural = "audit entries"
        # Each filter with seq after it: a filtered page is read newest first straight
        # off one index (keyset paging), whatever the table's size.
        indexes = [
            models.Index(fields=["actor_name", "seq"], name="audit_actor_seq"),
            models.Index(fields=["action", "seq"], name="audit_action_seq"),
            models.Index(fields=["target_kind", "seq"], name="audit_kind_seq"),
            models.Index(fields=["target_id", "seq"], name="audit_target_id_seq"),
            models.Index(fields=["target_name", "seq"], name="audit_target_name_seq"),
            models.Index(fields=["outcome", "seq"], name="audit_outcome_seq"),
            models.Index(fields=["actor", "seq"], name="audit_actor_id_seq"),
        ]
        # Granted by role in accounts (ROLE_PERMISSIONS); asked with user.has_perm.
        permissions = [
            ("read_all", "Read every entry of both audit logs"),
            ("export", "Export the audit trail"),
            ("verify", "Check the audit chain"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.actor_name} {self.action} {self.target_kind}:{self.target_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("audit entries cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit entries cannot be deleted")

    def compute_hash(self) -> str:
        """SHA-256 over the entry's content and the previous entry's hash."""
        content = {
            "seq": self.seq,
            "created_at": self.created_at.isoformat(),
            "actor_id": self.actor_id,
            "actor_name": self.actor_name,
            "action": self.action,
            "target_kind": self.target_kind,
            "target_id": self.target_id,
            "target_name": self.target_name,
            "outcome": self.outcome,
            "error": self.error,
            "client_ip": self.client_ip,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
        }
        # Added later: only entries that carry one hash it, so older entries still verify.
        if self.user_agent:
            content["user_agent"] = self.user_agent
        if self.connection:
            content["connection"] = self.connection
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


class AuditAnchor(models.Model):
    """Where the kept chain starts after pruning: the last pruned entry's seq, hash and
    time. `verify_chain` starts from the newest anchor instead of the genesis hash."""

    seq = models.PositiveBigIntegerField(unique=True, editable=False)
    hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(editable=False)
    pruned_at = models.DateTimeField(editable=False)
    pruned = models.PositiveBigIntegerField(editable=False)

    class Meta:
        ordering = ["-seq"]

    def __str__(self) -> str:
        return f"anchor at #{self.seq} ({self.created_at:%Y-%m-%d %H:%M})"


def delete_through(seq: int, batch: int = 10_000) -> int:
    """Remove every entry up to `seq`, in batches; the one door past AppendOnlyError.

    Only retention (trail.prune) calls this, after writing the anchor that keeps the
    rest verifiable. Returns how many entries went.
    """
    removed = 0
    low = AuditEntry.objects.filter(seq__lte=seq).order_by("seq").values_list("seq", flat=True)
    first = low.first()
    if first is None:
        return 0
    for start in range(first, seq + 1, batch):
        chunk = AuditEntry.objects.filter(seq__gte=start, seq__lte=min(start + batch - 1, seq))
        removed += models.QuerySet.delete(chunk)[0]
    return removed
