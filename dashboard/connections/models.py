from django.conf import settings
from django.core.validators import URLValidator
from django.db import models

from dashboard.connections import vault

# Shown for the connection DAYTONA_API_URL/DAYTONA_API_KEY (or the embedded engine)
# configure; no stored connection may take the name.
DEFAULT_NAME = "Default"
# What is kept of a secret in the clear, to tell two apart.
TAIL = 4


class Kind(models.TextChoices):
    API_KEY = "api_key", "API key"
    # Daytona's dashboard sign-in token: it needs the organization, sent as
    # X-Daytona-Organization-ID (as Daytona's SDK does for DAYTONA_JWT_TOKEN).
    JWT = "jwt", "JWT and organization id"


class Connection(models.Model):
    """A Daytona besides the default: where it is and the secret that signs in."""

    name = models.CharField(max_length=64, unique=True)
    api_url = models.CharField(
        "API URL", max_length=500, validators=[URLValidator(schemes=["http", "https"])]
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.API_KEY)
    organization_id = models.CharField("organization id", max_length=64, blank=True)
    # Fernet token (dashboard/connections/vault.py); the plaintext is never stored.
    sealed_secret = models.TextField(editable=False)
    secret_tail = models.CharField(max_length=TAIL, editable=False)
    # Who besides admins may switch to it.
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="daytona_connections"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        # Never the sealed secret: a repr ends up in tracebacks and logs.
        return f"<Connection {self.pk} {self.name!r}>"

    def set_secret(self, plaintext: str) -> None:
        self.sealed_secret = vault.seal(plaintext)
        self.secret_tail = plaintext[-TAIL:]

    def secret(self) -> str:
        """The plaintext secret; vault.SecretUnreadable when no key opens it."""
        return vault.unseal(self.sealed_secret)


ORGANIZATION_HEADER = "X-Daytona-Organization-ID"


def sign_in_headers(secret: str, organization_id: str = "") -> dict[str, str]:
    """How Daytona takes a key or a JWT: Bearer, and the organization for a JWT."""
    headers = {"Authorization": f"Bearer {secret}"}
    if organization_id:
        headers[ORGANIZATION_HEADER] = organization_id
    return headers
