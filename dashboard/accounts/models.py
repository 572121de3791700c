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
