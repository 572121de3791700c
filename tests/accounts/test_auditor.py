"""The auditor role: reads everything and both audit logs, exports and checks the chain,
and acts on nothing."""

import pytest
from django.urls import reverse

from dashboard.accounts import access
from dashboard.accounts.models import ROLE_HELP, Role
from dashboard.audit.models import AuditEntry
from tests.conftest import client_for, make_user
from tests.html_attrs import elements

HTMX = {"HX-Request": "true"}


@pytest.fixture
def auditor(db):
    return make_user("aud", Role.AUDITOR)


def test_an_auditor_reads_every_resource_and_acts_on_none(auditor) -> None:
    owned = {"sandbar.owner": "aud"}
    assert access.sandbox_access(auditor) == access.READ  # may not create
    assert access.sandbox_access(auditor, owned) == access.READ  # nor act on "their own"
    assert access.terminal_access(auditor, owned) == access.NONE
    for rule in (access.snapshot_access, access.volume_access, access.limits_access):
        assert rule(auditor) == access.READ
    assert access.team_access(auditor) == access.READ
    assert access.settings_access(auditor) == access.NONE


@pytest.mark.parametrize(
    ("role", "granted"),
    [(Role.ADMIN, True), (Role.AUDITOR, True), (Role.MEMBER, False), (Role.VIEWER, False)],
)
def test_the_audit_permissions_follow_the_role(db, role, granted) -> None:
    person = make_user(f"p-{role}", role)
    for perm in ("audit.read_all", "audit.export", "audit.verify"):
        assert person.has_perm(perm) is granted
    assert not person.has_perm("audit.delete_auditentry")  # no role changes the trail


def test_a_deactivated_auditor_holds_no_permission(auditor) -> None:
    auditor.is_active = False
    auditor.save()
    assert not auditor.has_perm("audit.read_all")


def test_an_admin_makes_someone_an_auditor_and_it_is_recorded(admin_client, member_user) -> None:
    response = admin_client.post(
        reverse("team_role", args=[member_user.pk]), {"role": "auditor"}, headers=HTMX
    )
    assert response.status_code == 200
    member_user.refresh_from_db()
    assert member_user.role == Role.AUDITOR and member_user.is_auditor
    entry = AuditEntry.objects.order_by("-seq").first()
    assert (entry.action, entry.detail) == ("team.role", {"old": "member", "new": "auditor"})
    team = admin_client.get(reverse("team")).content.decode()
    assert elements(team, "option", value="auditor") and ROLE_HELP[Role.AUDITOR][:20] in team


def test_an_auditor_changes_nothing_on_the_team(auditor, member_user) -> None:
    client = client_for(auditor)
    response = client.post(reverse("team_role", args=[member_user.pk]), {"role": "admin"})
    assert response.status_code == 403
    member_user.refresh_from_db()
    assert member_user.role == Role.MEMBER


def test_an_auditors_pages_offer_no_action(auditor, daytona_engine) -> None:
    client = client_for(auditor)
    sandboxes = client.get(reverse("sandboxes")).content.decode()
    assert reverse("sandbox_create") not in sandboxes
    assert reverse("snapshot_create") not in client.get(reverse("snapshots")).content.decode()
    assert reverse("volume_create") not in client.get(reverse("volumes")).content.decode()
    audit = client.get(reverse("audit")).content.decode()
    assert reverse("audit_daytona") in audit and reverse("audit_export") in audit
    assert elements(audit, "form", action=reverse("audit_check"))
