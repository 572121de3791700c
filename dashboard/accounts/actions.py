"""Changes to people and roles. Each one is checked, applied atomically and audited."""

from dataclasses import dataclass

from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from dashboard.accounts.models import Role, User
from dashboard.accounts.quotas import QUOTA_FIELDS, quota_on
from dashboard.audit.models import Outcome
from dashboard.audit.trail import record_request


class TeamChangeRefused(Exception):
    """A change that would leave the team in a bad state (say, without an admin)."""


@dataclass(frozen=True)
class Invitation:
    user: User
    url: str


def invitation_url(request: HttpRequest, user: User) -> str:
    """An absolute one-time link where `user` sets their password."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return request.build_absolute_uri(reverse("set_password", args=[uid, token]))


def _audit(request: HttpRequest, action: str, person: User, **fields) -> None:
    """One audit entry about `person`, in the same words for every team change."""
    record_request(
        request,
        action,
        target_kind="user",
        target_id=str(person.pk),
        target_name=person.username,
        **fields,
    )


def _other_active_admins(user: User) -> int:
    # Locks the admin rows so two admins demoting each other at once cannot
    # both succeed and leave nobody in charge.
    admins = User.objects.select_for_update().filter(role=Role.ADMIN, is_active=True)
    return sum(1 for admin in admins if admin.pk != user.pk)


def _refused(request: HttpRequest, action: str, person: User, error: TeamChangeRefused) -> None:
    # Recorded after the change's transaction has rolled back, so it survives it.
    _audit(
        request,
        action,
        person,
        outcome=Outcome.DENIED,
        error=str(error),
    )


def do_create_person(request: HttpRequest, person: User) -> Invitation:
    """Save a new, password-less account and return its invitation link."""
    with transaction.atomic():
        person.set_unusable_password()
        person.save()
        _audit(
            request,
            "team.create",
            person,
            detail={"role": person.role},
        )
    return Invitation(person, invitation_url(request, person))


def do_change_role(request: HttpRequest, person: User, role: str) -> None:
    """Give `person` a new role; the last active admin cannot be demoted."""
    try:
        _change_role(request, person, role)
    except TeamChangeRefused as refused:
        _refused(request, "team.role", person, refused)
        raise


def _change_role(request: HttpRequest, person: User, role: str) -> None:
    with transaction.atomic():
        person = User.objects.select_for_update().get(pk=person.pk)
        old = person.role
        if old == role:
            return
        if old == Role.ADMIN and person.is_active and _other_active_admins(person) == 0:
            raise TeamChangeRefused(
                f"{person.username} is the last admin; make someone else an admin first."
            )
        person.role = role
        person.save(update_fields=["role"])
        _audit(
            request,
            "team.role",
            person,
            detail={"old": old, "new": role},
        )


def do_set_active(request: HttpRequest, person: User, active: bool) -> None:
    """Deactivate or reactivate an account; nobody deactivates themselves or the last admin."""
    action = "team.activate" if active else "team.deactivate"
    try:
        _set_active(request, person, active, action)
    except TeamChangeRefused as refused:
        _refused(request, action, person, refused)
        raise


def _set_active(request: HttpRequest, person: User, active: bool, action: str) -> None:
    with transaction.atomic():
        person = User.objects.select_for_update().get(pk=person.pk)
        if person.is_active == active:
            return
        if not active and person.pk == request.user.pk:
            raise TeamChangeRefused("You cannot deactivate your own account.")
        if not active and person.role == Role.ADMIN and _other_active_admins(person) == 0:
            raise TeamChangeRefused(
                f"{person.username} is the last admin; make someone else an admin first."
            )
        person.is_active = active
        person.save(update_fields=["is_active"])
        _audit(
            request,
            action,
            person,
        )


def do_invite(request: HttpRequest, person: User) -> Invitation:
    """A fresh set-password link for `person` (earlier links stop working once used)."""
    if not person.is_active:
        refused = TeamChangeRefused("Reactivate the account before inviting it.")
        _refused(request, "team.invite", person, refused)
        raise refused
    _audit(
        request,
        "team.invite",
        person,
    )
    return Invitation(person, invitation_url(request, person))


def active_connection(request: HttpRequest) -> tuple[int | None, str]:
    """The connection the request is aimed at (pk None: the Default), and its name.
    Set by the connections middleware; read by attribute, as connections sit above."""
    active = getattr(request, "daytona_connection", None)
    return getattr(active, "pk", None), getattr(active, "name", "Default")


def do_set_quota(request: HttpRequest, person: User, values: dict[str, int | None]) -> None:
    """Set someone's personal quota on the connection in use (admins have none: they
    are not limited by it)."""
    connection_id, connection_name = active_connection(request)
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=person.pk).first()
        quota = quota_on(person, connection_id)
        old = {name: getattr(quota, name) for name in QUOTA_FIELDS}
        new = {name: values.get(name) for name in QUOTA_FIELDS}
        if old == new:
            return
        for name, value in new.items():
            setattr(quota, name, value)
        quota.save()
        _audit(
            request,
            "team.quota",
            person,
            detail={"old": old, "new": new, "connection": connection_name},
        )
