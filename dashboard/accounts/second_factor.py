"""The optional second factor: a code from an authenticator app (TOTP, RFC 6238).

Codes are made and checked by pyotp; the QR code the app scans is drawn by segno
as an SVG data URI (the page's CSP allows `data:` images, nothing inline else).
A code is accepted within one 30-second step either side of now, and only once
(its step is kept). With SANDBAR_ADMIN_SECOND_FACTOR set, an admin without one is
sent to the account page to set it up before anything else.
"""

import time

import pyotp
import segno
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dashboard.accounts.models import SecondFactor, User

STEP_SECONDS = 30
ISSUER = "Sandbar"
# How long a person who gave the right password has to type the code.
PENDING_SECONDS = 300
PENDING_KEY = "sandbar_second_factor"


def new_secret() -> str:
    return pyotp.random_base32()


def setup_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.get_username(), issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    return segno.make(uri, error="m").svg_data_uri(scale=4, border=2)


def _step_of(secret: str, code: str) -> int | None:
    """The step `code` is valid for (now, or one step either side), or None."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now = int(time.time()) // STEP_SECONDS
    for step in (now, now - 1, now + 1):
        if pyotp.utils.strings_equal(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def code_matches(secret: str, code: str) -> bool:
    """For setting up: the app makes codes for this secret."""
    return _step_of(secret, code) is not None


def verify(user: User, code: str) -> bool:
    """Whether `code` is `user`'s current code, not used before; uses it up."""
    with transaction.atomic():
        factor = SecondFactor.objects.select_for_update().filter(user=user).first()
        if factor is None:
            return False
        step = _step_of(factor.secret, code)
        if step is None or step <= factor.last_step:
            return False
        factor.last_step = step
        factor.save(update_fields=["last_step"])
        return True


def enable(user: User, secret: str, code: str) -> bool:
    """Keep `secret` as `user`'s second factor if `code` shows their app has it."""
    step = _step_of(secret, code)
    if step is None:
        return False
    SecondFactor.objects.update_or_create(
        user=user, defaults={"secret": secret, "created_at": timezone.now(), "last_step": step}
    )
    return True


def has_one(user: User) -> bool:
    return SecondFactor.objects.filter(user=user).exists()


def required_of(user: User) -> bool:
    """Whether `user` must have a second factor (admins, when the setting says so)."""
    return settings.ADMIN_SECOND_FACTOR and getattr(user, "is_admin", False)
