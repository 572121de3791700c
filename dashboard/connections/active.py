"""Which connection a person is using: their choice, kept in the session, if they may.

Admins may use every connection; others the ones an admin granted them; everyone the
Default. A choice that is no longer allowed (the grant or the connection gone) falls
back to the Default.
"""

from dataclasses import dataclass

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
    pool = f"connection-{connection.pk}"
    try:
        secret = connection.secret()
    except vault.SecretUnreadable as error:
        return Target(
            pool=pool,
            url=connection.api_url,
            error=f"{connection.name}: {error}",
            name=connection.name,
        )
    return Target(
        pool=pool,
        url=connection.api_url,
        headers=sign_in_headers(secret, connection.organization_id),
        name=connection.name,
    )


async def resolve(user: User | AnonymousUser, chosen: object) -> Active:
    """The connection `user` is using, given the session's `chosen` pk: no query for the
    Default, one otherwise (the grant is checked on every request)."""
    if chosen is None:
        return DEFAULT
    connection = await usable(user).filter(pk=chosen).afirst()
    if connection is None:
        return DEFAULT
    return Active(connection.pk, connection.name, target_of(connection))
