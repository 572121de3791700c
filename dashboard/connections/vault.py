"""Connection secrets at rest: Fernet (AES-CBC + HMAC) with MultiFernet for rotation.

The keys are SANDBAR_SECRET_KEYS, newest first: the first seals, any opens. Without
it, one key is derived from SECRET_KEY (HKDF), and that derived key also opens
secrets when SANDBAR_SECRET_KEYS is set, so moving to keys of one's own is: set them,
run `manage.py rotate_connection_secrets` (docs/deploy.md, "Connection secrets").
"""

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# A fixed label: the derived key is for this use of SECRET_KEY and no other.
_INFO = b"sandbar: daytona connection secrets"


class SecretUnreadable(Exception):
    """No configured key opens a stored secret (a key was dropped or SECRET_KEY changed)."""


def derived_key(secret_key: str) -> bytes:
    """A Fernet key from Django's SECRET_KEY."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


def keys() -> MultiFernet:
    """The configured keys, newest first; ImproperlyConfigured names a bad one by place."""
    return _keys(tuple(settings.SANDBAR_SECRET_KEYS), settings.SECRET_KEY)


@functools.lru_cache(maxsize=4)
def _keys(configured: tuple[str, ...], secret_key: str) -> MultiFernet:
    fernets = []
    for place, key in enumerate(configured, start=1):
        try:
            fernets.append(Fernet(key))
        except ValueError:
            # The place, never the value: this message goes to logs.
            raise ImproperlyConfigured(
                f"SANDBAR_SECRET_KEYS: key {place} is not a Fernet key (32 url-safe "
                "base64-encoded bytes; make one with `manage.py rotate_connection_secrets "
                "--new-key`)"
            ) from None
    fernets.append(Fernet(derived_key(secret_key)))
    return MultiFernet(fernets)


def seal(plaintext: str) -> str:
    """The secret encrypted under the newest key, as ASCII text."""
    return keys().encrypt(plaintext.encode()).decode("ascii")


def unseal(token: str) -> str:
    try:
        return keys().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise SecretUnreadable(
            "The stored secret cannot be opened with the configured keys "
            "(SANDBAR_SECRET_KEYS or SECRET_KEY changed): enter the secret again."
        ) from None


def reseal(token: str) -> str:
    """The same secret under the newest key (MultiFernet.rotate)."""
    try:
        return keys().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken:
        raise SecretUnreadable("no configured key opens this secret") from None


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")
