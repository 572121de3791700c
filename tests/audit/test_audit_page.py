"""The audit page: absolute times, actions chosen from a list, and who sees what."""

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard.audit.models import Outcome
from dashboard.audit.trail import record
from tests.html_attrs import elements, text_of

STRANGER_IP = "198.51.100.23"


@pytest.fixture
def trail(db, admin_user, member_user, viewer_user):
    """A failed sign-in by a stranger, a throttle, and ordinary work by each person."""
    record(
        None,
        "auth.sign_in",
        outcome=Outcome.FAILURE,
        client_ip=STRANGER_IP,
        error="wrong password",
        actor_name="hunter2-typed-as-name",
    )
    record(
        None,
        "auth.throttle",
        outcome=Outcome.DENIED,
        client_ip=STRANGER_IP,
        actor_name="admin",
        target_kind="throttle",
        target_name=f"address {STRANGER_IP}",
    )
    record(admin_user, "team.role", target_kind="user", target_name="mel", client_ip="203.0.113.1")
    record(member_user, "sandbox.start", target_id="sb-1", client_ip="203.0.113.2")
    record(viewer_user, "auth.sign_in", client_ip="203.0.113.3")
    record(
        viewer_user,
        "auth.sign_in",
        outcome=Outcome.FAILURE,
        client_ip="203.0.113.3",
        error="wrong code",
    )


def test_an_admin_sees_every_failed_sign_in_and_address(admin_client, trail) -> None:
    html = admin_client.get(reverse("audit")).content.decode()
    assert "hunter2-typed-as-name" in html and "auth.throttle" in html
    for address in (STRANGER_IP, "203.0.113.1", "203.0.113.2", "203.0.113.3"):
        assert address in html


@pytest.mark.parametrize("who", ["member_client", "viewer_client"])
def test_others_see_no_one_elses_failed_sign_ins_throttles_or_addresses(
    request, trail, who
) -> None:
    client = request.getfixturevalue(who)
    html = client.get(reverse("audit")).content.decode()
    assert "hunter2-typed-as-name" not in html and "auth.throttle" not in html
    assert STRANGER_IP not in html and "203.0.113.1" not in html
    assert "sandbox.start" in html and "team.role" in html  # the team's work stays visible
    assert "Only admins see other people" in html
    # Nor can a filter dig them out.
    html = client.get(reverse("audit"), {"action": "auth."}).content.decode()
    assert "hunter2-typed-as-name" not in html and STRANGER_IP not in html
    html = client.get(reverse("audit"), {"actor": "hunter2-typed-as-name"}).content.decode()
    assert "hunter2-typed-as-name" not in text_of(html, "results").replace("No entries match", "")


def test_each_person_sees_their_own_failed_sign_ins_and_address(viewer_client, trail) -> None:
    html = viewer_client.get(reverse("audit"), {"actor": "vic"}).content.decode()
    assert "wrong code" in html and "203.0.113.3" in html


def test_the_member_sees_their_own_address_but_not_the_viewers(member_client, trail) -> None:
    html = member_client.get(reverse("audit")).content.decode()
    assert "203.0.113.2" in html and "203.0.113.3" not in html


def test_actions_are_chosen_from_those_on_record_grouped_by_kind(admin_client, trail) -> None:
    html = admin_client.get(reverse("audit")).content.decode()
    assert len(elements(html, "select", name="action")) == 1
    values = [o["value"] for o in elements(html, "option") if o.get("value", "").count(".")]
    assert values == [
        "auth.",
        "auth.sign_in",
        "auth.throttle",
        "sandbox.",
        "sandbox.start",
        "team.",
        "team.role",
    ]
    assert [g["label"] for g in elements(html, "optgroup")] == ["auth", "sandbox", "team"]


def test_a_viewer_is_not_offered_actions_only_admins_may_read(viewer_client, trail) -> None:
    html = viewer_client.get(reverse("audit")).content.decode()
    assert not elements(html, "option", value="auth.throttle")


def test_an_exact_action_matches_only_itself(admin_client, admin_user, trail) -> None:
    record(admin_user, "team.role_extra", target_kind="user", target_name="not-me")
    html = admin_client.get(reverse("audit"), {"action": "team.role"}).content.decode()
    assert "team.role" in html and "not-me" not in html
    html = admin_client.get(reverse("audit"), {"action": "team."}).content.decode()
    assert "not-me" in html


def test_an_unknown_action_is_a_400_saying_so(admin_client, trail) -> None:
    response = admin_client.get(reverse("audit"), {"action": "<script>"})
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content


def test_times_are_absolute_with_the_relative_time_on_hover(admin_client, trail) -> None:
    html = admin_client.get(reverse("audit")).content.decode()
    times = elements(html, "time")
    assert times
    today = timezone.now().strftime("%Y-%m-%d")
    for element in times:
        assert "data-relative-title" in element and "data-relative" not in element
        assert element["title"].endswith("ago") or element["title"] == "now"
    assert html.count(f">{today} ") >= len(times)
