"""Who started which shell: the toolbox knows PTYs, only the dashboard knows people."""

from django.conf import settings
from django.db import models


class Shell(models.Model):
    """A PTY session started through the dashboard; its starter types, admins may watch."""

    # The id the browser minted and keeps; also the PTY's id in the toolbox.
    pty_id = models.CharField(max_length=80, unique=True)
    sandbox_id = models.CharField(max_length=255, db_index=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.pty_id} in {self.sandbox_id}"
