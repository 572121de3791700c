import re

import pytest
from django.urls import reverse

from dashboard.accounts.models import ConnectionQuota, Role, User
from dashboard.audit.models import AuditEntry, Outcome
from tests.conftest import make_user

HTMX = {"HX-Request": "true"}


def last_entry() -> AuditEntry:
    return AuditEntry.objects.order_by("-seq").first()


def test_an_admin_adds_someone_and_gets_a_one_time_link(admin_client, client) -> None:
    response = admin_client.post(
        reverse("team_add"), {"username": "newbie", "role": "member", "email": "n@example.com"}
    )
    assert response.status_code == 200
    person = User.objects.get(username="newbie")
    assert person.role == Role.MEMBER and not person.has_usable_password()
    link = (
        re.search(rb'value="(http://testserver/set-password/[^"]+)"', response.content)
        .group(1)
        .decode()
    )
    assert last_entry().action == "team.create"

    path = link.removeprefix("http://testserver")
    form_page = client.get(path, follow=True)
    assert b"Choose your password" in form_page.content
    new = "a-fresh-long-password-9"
    done = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": new, "new_password2": new}
    )
    assert done.status_code == 302
    person.refresh_from_db()
    assert person.check_password(new)
    assert b"no longer works" in client.get(path, follow=True).content


def test_a_taken_username_is_refused_and_nothing_is_created(admin_client, admin_user) -> None:
    response = admin_client.post(reverse("team_add"), {"username": "ADA", "role": "viewer"})
    assert b"already has that username" in response.content
    assert User.objects.count() == 1


def test_an_admin_changes_a_role_and_it_is_recorded(admin_client, member_user) -> None:
    response = admin_client.post(
        reverse("team_role", args=[member_user.pk]), {"role": "viewer"}, headers=HTMX
    )
    assert response.status_code == 200
    assert b'id="team"' in response.content and b"<html" not in response.content
    member_user.refresh_from_db()
    assert member_user.role == Role.VIEWER
    entry = last_entry()
    assert (entry.action, entry.detail) == ("team.role", {"old": "member", "new": "viewer"})


def test_an_unknown_role_is_refused_with_a_message(admin_client, member_user) -> None:
    response = admin_client.post(
        reverse("team_role", args=[member_user.pk]), {"role": "owner"}, headers=HTMX
    )
    assert response.status_code == 400
    assert b"owner is not a role" in response.content
    member_user.refresh_from_db()
    assert member_user.role == Role.MEMBER


def test_the_last_admin_cannot_be_demoted(admin_client, admin_user) -> None:
    response = admin_client.post(
        reverse("team_role", args=[admin_user.pk]), {"role": "member"}, headers=HTMX
    )
    assert b"is the last admin" in response.content
    admin_user.refresh_from_db()
    assert admin_user.role == Role.ADMIN
    entry = last_entry()
    assert (entry.action, entry.outcome) == ("team.role", Outcome.DENIED)


def test_an_admin_may_step_down_when_another_admin_remains(admin_client, admin_user) -> None:
    make_user("bea", Role.ADMIN)
    admin_client.post(reverse("team_role", args=[admin_user.pk]), {"role": "member"})
    admin_user.refresh_from_db()
    assert admin_user.role == Role.MEMBER


def test_nobody_deactivates_themselves(admin_client, admin_user) -> None:
    make_user("bea", Role.ADMIN)
    response = admin_client.post(
        reverse("team_active", args=[admin_user.pk]), {"active": "false"}, follow=True
    )
    assert b"cannot deactivate your own account" in response.content
    admin_user.refresh_from_db()
    assert admin_user.is_active


def test_the_last_active_admin_cannot_be_deactivated(admin_client) -> None:
    other = make_user("bea", Role.ADMIN)
    other.is_active = False
    other.save()
    # Reactivating works, then deactivating one of two admins works too.
    admin_client.post(reverse("team_active", args=[other.pk]), {"active": "true"})
    other.refresh_from_db()
    assert other.is_active
    admin_client.post(reverse("team_active", args=[other.pk]), {"active": "false"})
    other.refresh_from_db()
    assert not other.is_active


def test_deactivating_and_reactivating_someone_is_recorded(admin_client, member_user) -> None:
    admin_client.post(reverse("team_active", args=[member_user.pk]), {"active": "false"})
    member_user.refresh_from_db()
    assert not member_user.is_active
    assert last_entry().action == "team.deactivate"
    admin_client.post(reverse("team_active", args=[member_user.pk]), {"active": "maybe"})
    member_user.refresh_from_db()
    assert not member_user.is_active


def test_a_member_cannot_change_the_team_and_the_attempt_is_recorded(
    member_client, viewer_user
) -> None:
    response = member_client.post(reverse("team_role", args=[viewer_user.pk]), {"role": "admin"})
    assert response.status_code == 403
    viewer_user.refresh_from_db()
    assert viewer_user.role == Role.VIEWER
    assert last_entry().outcome == Outcome.DENIED


def test_everyone_sees_the_team_but_only_admins_see_its_controls(
    viewer_client, admin_client
) -> None:
    viewer_page = viewer_client.get(reverse("team")).content
    assert b"vic" in viewer_page and b"Add someone" not in viewer_page
    assert b"Add someone" in admin_client.get(reverse("team")).content


def test_a_changed_role_takes_effect_on_the_next_request(admin_client, member_user, client) -> None:
    client.force_login(member_user)
    assert client.get(reverse("settings")).status_code == 403
    admin_client.post(reverse("team_role", args=[member_user.pk]), {"role": "admin"})
    assert client.get(reverse("settings")).status_code == 200


@pytest.mark.parametrize("pk", [999999])
def test_changing_someone_who_does_not_exist_is_a_404(admin_client, pk) -> None:
    assert admin_client.post(reverse("team_role", args=[pk]), {"role": "viewer"}).status_code == 404


def test_an_admin_sets_a_members_quota_and_it_is_recorded(admin_client, member_user) -> None:
    response = admin_client.post(
        reverse("team_quota", args=[member_user.pk]),
        {"quota_sandboxes": "3", "quota_cpu": "4", "quota_memory": "", "quota_disk": "20"},
        headers=HTMX,
    )
    assert response.status_code == 200
    quota = ConnectionQuota.objects.get(user=member_user, connection=None)
    assert (quota.quota_sandboxes, quota.quota_cpu, quota.quota_memory) == (3, 4, None)
    assert b"3 sandboxes" in response.content
    entry = last_entry()
    assert entry.action == "team.quota"
    assert entry.detail["new"]["quota_disk"] == 20


@pytest.mark.parametrize("value", ["-1", "lots", "99999"])
def test_a_bad_quota_is_refused_and_nothing_changes(admin_client, member_user, value) -> None:
    response = admin_client.post(
        reverse("team_quota", args=[member_user.pk]), {"quota_cpu": value}, headers=HTMX
    )
    assert response.status_code == 400
    assert not ConnectionQuota.objects.filter(user=member_user).exists()


def test_a_change_through_htmx_announces_itself_with_a_toast(admin_client, member_user) -> None:
    response = admin_client.post(
        reverse("team_role", args=[member_user.pk]), {"role": "viewer"}, headers=HTMX
    )
    assert "Saved the role of mel." in response["HX-Trigger"]


def test_a_change_without_htmx_says_so_on_the_next_page(admin_client, member_user) -> None:
    response = admin_client.post(
        reverse("team_active", args=[member_user.pk]), {"active": "false"}, follow=True
    )
    assert b"Deactivated mel; their sessions have ended." in response.content
