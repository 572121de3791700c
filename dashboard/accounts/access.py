"""Who may see and who may act, one helper per kind of resource.

Views and consumers ask these helpers and nothing else, so a rule lives in one
place. Each takes a user, never a request. `Access.see` False means the user
must not learn the thing exists (404); `see` without `act` means read-only (403
on a change). The audit trail, which sits below accounts, asks Django's
`user.has_perm("audit.…")`, which backends.SignInBackend answers from
models.ROLE_PERMISSIONS.
"""

from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser

from dashboard.accounts.models import Role, User
from dashboard.daytona.labels import OWNER_LABEL


@dataclass(frozen=True)
class Access:
    see: bool
    act: bool


NONE = Access(see=False, act=False)
READ = Access(see=True, act=False)
FULL = Access(see=True, act=True)


def _role(user: User | AnonymousUser) -> str | None:
    if not user.is_authenticated or not user.is_active:
        return None
    return user.role


def sandbox_access(user: User | AnonymousUser, labels: dict[str, str] | None = None) -> Access:
    """Access to one sandbox (given its labels) or, with no labels, to creating one."""
    role = _role(user)
    if role == Role.ADMIN:
        return FULL
    if role == Role.MEMBER:
        if labels is None:
            return FULL
        return FULL if labels.get(OWNER_LABEL) == user.get_username() else READ
    if role in (Role.VIEWER, Role.AUDITOR):
        return READ
    return NONE


def terminal_access(user: User | AnonymousUser, labels: dict[str, str]) -> Access:
    """A shell inside a sandbox: its owner or an admin types; other admins watch too."""
    access = sandbox_access(user, labels)
    # Reading a terminal shows what someone else typed: only those who may act
    # on the sandbox, or admins, may even watch.
    return access if access.act else NONE


def shared_resource_access(user: User | AnonymousUser) -> Access:
    """Snapshots and volumes: admins manage them, members use them, viewers and auditors read."""
    role = _role(user)
    if role == Role.ADMIN:
        return FULL
    if role in (Role.MEMBER, Role.VIEWER, Role.AUDITOR):
        return READ
    return NONE


snapshot_access = shared_resource_access
volume_access = shared_resource_access


def limits_access(user: User | AnonymousUser) -> Access:
    """Usage and limits: everyone reads; admins set member quotas."""
    return shared_resource_access(user)


def team_access(user: User | AnonymousUser) -> Access:
    """People and roles: everyone sees who is on the team; admins change it."""
    return shared_resource_access(user)


def settings_access(user: User | AnonymousUser) -> Access:
    """The connection settings page: admins only."""
    return FULL if _role(user) == Role.ADMIN else NONE
