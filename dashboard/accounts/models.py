from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


ROLE_HELP = {
    Role.ADMIN: "Everything: people, roles, every sandbox.",
    Role.MEMBER: "Creates sandboxes and acts on their own; reads the rest.",
    Role.VIEWER: "Reads everything, changes nothing.",
}


class User(AbstractUser):
    """A person signed in to Sandbar; what they may do follows from `role`."""

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    # Per-person quotas, checked before Sandbar asks Daytona for anything; the
    # organization's own limits apply on top. Empty means no personal limit.
    quota_sandboxes = models.PositiveIntegerField(
        null=True, blank=True, verbose_name="sandboxes", help_text="Sandboxes at once (any state)."
    )
    quota_cpu = models.PositiveIntegerField(
        null=True, blank=True, verbose_name="vCPUs", help_text="Total vCPUs of running sandboxes."
    )
    quota_memory = models.PositiveIntegerField(
        null=True,
        blank=True,
        verbose_name="memory (GiB)",
        help_text="Total memory of running sandboxes.",
    )
    quota_disk = models.PositiveIntegerField(
        null=True,
        blank=True,
        verbose_name="disk (GiB)",
        help_text="Total disk of all their sandboxes.",
    )

    class Meta:
        ordering = ["username"]

    @property
    def is_admin(self) -> bool:
        return self.is_active and self.role == Role.ADMIN

    @property
    def is_member(self) -> bool:
        return self.is_active and self.role == Role.MEMBER

    @property
    def is_viewer(self) -> bool:
        return self.is_active and self.role == Role.VIEWER
