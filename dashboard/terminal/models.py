"""Who started which shell: the toolbox knows PTYs, only the dashboard knows people."""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

# Ended shells are kept this long, and at most this many per sandbox: enough to tell
# a returning tab "the shell has ended", without the table growing forever.
ENDED_SHELLS_KEPT_FOR = timedelta(days=30)
ENDED_SHELLS_KEPT_PER_SANDBOX = 50


class Shell(models.Model):
    """A PTY session started through the dashboard; its starter types, admins may watch."""

    # The id the browser minted and keeps; also the PTY's id in the toolbox.
    pty_id = models.CharField(max_length=80, unique=True)
    sandbox_id = models.CharField(max_length=255, db_index=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    # "Shell 3": its place among the sandbox's shells, for a name people can tell apart.
    number = models.PositiveIntegerField(default=0)
    # What the running program calls its window (OSC 0/2), as the owner's terminal saw it.
    title = models.CharField(max_length=120, blank=True)
    # Last keystroke (written every few seconds, not per key): "idle for" is since then.
    last_input_at = models.DateTimeField(null=True, blank=True)
    # Its tab closed: the shell is closed after a grace period unless a tab reattaches.
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.pty_id} in {self.sandbox_id}"

    @property
    def name(self) -> str:
        return f"Shell {self.number}" if self.number else "Shell"


def next_number(sandbox_id: str) -> int:
    """The number the sandbox's next shell is called by (one more than the highest)."""
    highest = Shell.objects.filter(sandbox_id=sandbox_id).aggregate(models.Max("number"))
    return (highest["number__max"] or 0) + 1


def prune_shells(sandbox_id: str) -> int:
    """Forget ended shells older than 30 days anywhere, and all but a sandbox's newest 50.

    Open shells (not ended) are never pruned: their PTY may still be running.
    Returns how many records went.
    """
    ended = Shell.objects.filter(ended_at__isnull=False)
    gone, _ = ended.filter(ended_at__lt=timezone.now() - ENDED_SHELLS_KEPT_FOR).delete()
    keep = list(
        ended.filter(sandbox_id=sandbox_id)
        .order_by("-ended_at", "-pk")
        .values_list("pk", flat=True)[:ENDED_SHELLS_KEPT_PER_SANDBOX]
    )
    extra, _ = ended.filter(sandbox_id=sandbox_id).exclude(pk__in=keep).delete()
    return gone + extra
