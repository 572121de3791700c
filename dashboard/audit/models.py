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
    created_at = models.DateTimeField(editable=False, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too: the record must read the same after the account is renamed.
    actor_name = models.CharField(max_length=150, editable=False, db_index=True)
    action = models.CharField(max_length=64, editable=False, db_index=True)
    target_kind = models.CharField(max_length=32, blank=True, editable=False)
    target_id = models.CharField(max_length=255, blank=True, editable=False, db_index=True)
    target_name = models.CharField(max_length=255, blank=True, editable=False)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, editable=False)
    error = models.TextField(blank=True, editable=False)
    client_ip = models.CharField(max_length=64, blank=True, editable=False)
    detail = models.JSONField(default=dict, blank=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        verbose_name_plural = "audit entries"

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
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()
