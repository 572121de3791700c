from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"
    AUDITOR = "auditor", "Auditor"


ROLE_HELP = {
    Role.ADMIN: "Everything: people, roles, every sandbox.",
    Role.MEMBER: "Creates sandboxes and acts on their own; reads the rest.",
    Role.VIEWER: "Reads everything, changes nothing.",
    Role.AUDITOR: "Reads everything and both audit logs, exports them, checks the chain; "
    "changes nothing.",
}

# What a role may do with the audit trail, as Django permissions: the trail sits below
# accounts and asks `user.has_perm`, never the role (see backends.SignInBackend).
AUDIT_PERMISSIONS = ("audit.read_all", "audit.export", "audit.verify")
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.ADMIN: frozenset(AUDIT_PERMISSIONS),
    Role.AUDITOR: frozenset(AUDIT_PERMISSIONS),
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

    @property
    def is_auditor(self) -> bool:
        return self.is_active and self.role == Role.AUDITOR


class ConnectionQuota(models.Model):
    """A member's quota on one Daytona connection (None: the Default).

    Usage is counted on the connection in use, so the quota is kept per connection too.
    Checked before Sandbar asks Daytona for anything; the organization's own limits
    apply on top. Empty means no personal limit; no row, no limit at all.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="quotas")
    # By name: connections sit above accounts (tests/test_layering.py).
    connection = models.ForeignKey(
        "connections.Connection", on_delete=models.CASCADE, null=True, blank=True
    )
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
        constraints = [
            models.UniqueConstraint(fields=["user", "connection"], name="one_quota_a_connection"),
            # NULLs are distinct to a unique index: the Default needs its own.
            models.UniqueConstraint(
                fields=["user"],
                condition=models.Q(connection__isnull=True),
                name="one_quota_on_the_default",
            ),
        ]

    def __str__(self) -> str:
        return f"quota of user {self.user_id} on connection {self.connection_id or 'Default'}"


class SignInThrottle(models.Model):
    """Failed sign-ins counted for one address, one account from one address, or one
    account from anywhere (see `dashboard.accounts.ratelimit` for the policy)."""

    class Scope(models.TextChoices):
        ADDRESS = "address", "address"
        ACCOUNT_ADDRESS = "account_address", "account from an address"
        ACCOUNT = "account", "account"

    scope = models.CharField(max_length=16, choices=Scope.choices)
    # As typed, lowercased: unknown names are throttled like real ones, so the answer
    # does not tell which accounts exist. Empty for the address scope.
    username = models.CharField(max_length=150, blank=True)
    address = models.CharField(max_length=64, blank=True)
    failures = models.PositiveIntegerField(default=0)
    window_start = models.DateTimeField()
    blocked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "username", "address"], name="one_throttle_per_key"
            )
        ]
        indexes = [models.Index(fields=["window_start"])]

    def __str__(self) -> str:
        return " ".join(part for part in (self.scope, self.username, self.address) if part)


class AccountSession(models.Model):
    """One sign-in of a person, for the list of their sessions on the account page.

    Django's session table cannot be searched by person; this row is written at
    sign-in and points at the session by key. The session itself stays the truth: a
    row whose session is gone or expired is not shown (and is removed).
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sessions")
    session_key = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField()
    client_ip = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.user} from {self.client_ip or 'unknown'}"


class SecondFactor(models.Model):
    """A person's authenticator app (TOTP, RFC 6238): asked for after the password."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="second_factor")
    # Base32, as authenticator apps take it. It lives with the password hashes, in the
    # database only its owner may read (docs/security.md, "Files at rest").
    secret = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    # The 30-second step of the last code accepted: a code works once.
    last_step = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"authenticator of {self.user}"
