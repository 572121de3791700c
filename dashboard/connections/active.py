"""Which connection a person is using: their choice, kept in the session, if they may.

Admins may use every connection; others the ones an admin granted them; everyone the
Default. A choice that is no longer allowed (the grant or the connection gone) falls
back to the Default.
"""

import functools
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from dashboard.accounts.models import Role, User
from dashboard.connections import vault
from dashboard.connections.models import DEFAULT_NAME, Connection, sign_in_headers
from dashboard.daytona.client import Target

SESSION_KEY = "daytona_connection"


@dataclass(frozen=True)
class Active:
    """The connection in use; pk None: the Default."""

    pk: int | None = None
    name: str = DEFAULT_NAME
    target: Target | None = None


DEFAULT = Active()


def usable(user: User | AnonymousUser) -> QuerySet[Connection]:
    """The stored connections `user` may switch to."""
    if not user.is_authenticated or not user.is_active:
        return Connection.objects.none()
    if user.role == Role.ADMIN:
        return Connection.objects.all()
    return Connection.objects.filter(users=user)


def target_of(connection: Connection) -> Target:
    """Where calls go for `connection`; kept per row version, as opening the secret costs
    ~0.15 ms (HMAC and AES) and would otherwise be paid on every request."""
    return _target(
        connection.pk,
        connection.name,
        connection.api_url,
        connection.organization_id,
        connection.sealed_secret,
        # The keys too: changed keys must open (or fail to open) the secret afresh.
        tuple(settings.SANDBAR_SECRET_KEYS),
        settings.SECRET_KEY,
    )


POOL_PREFIX = "connection-"


def pool_name(pk: int) -> str:
    """The name of a connection's pooled client (dashboard/daytona/client.py)."""
    return f"{POOL_PREFIX}{pk}"


@functools.lru_cache(maxsize=256)
def _target(pk: int, name: str, url: str, organization: str, sealed: str, *_keys: object) -> Target:
    pool = pool_name(pk)
    try:
        secret = vault.unseal(sealed)
    except vault.SecretUnreadable as error:
        return Target(pool=pool, url=url, error=f"{name}: {error}", name=name, connection_id=pk)
    return Target(
        pool=pool,
        url=url,
        headers=sign_in_headers(secret, organization),
        name=name,
        connection_id=pk,
    )


def forget_targets() -> None:
    """Drop the opened secrets kept (a connection was deleted)."""
    _target.cache_clear()


async def resolve(user: User | AnonymousUser, chosen: object) -> Active:
    """The connection `user` is using, given the session's `chosen` pk: no query for the
    Default, one otherwise (the grant is checked on every request)."""
    if chosen is None:
        return DEFAULT
    connection = await usable(user).filter(pk=chosen).afirst()
    if connection is None:
        await _retire_if_gone(chosen)
        return DEFAULT
    return Active(connection.pk, connection.name, target_of(connection))


async def _retire_if_gone(chosen: object) -> None:
    """A chosen connection another worker deleted: close its pool here too (once: the
    caller forgets the choice)."""
    if not isinstance(chosen, int) or await Connection.objects.filter(pk=chosen).aexists():
        return
    from dashboard.connections import pools  # it imports this module

    pools.retire([chosen])
