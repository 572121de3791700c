import uuid

import pytest
from django.urls import reverse

from dashboard.audit.models import AuditEntry
from tests.snapshots.conftest import HX, engine_call, wait_for_snapshot


def act(client, snapshot_id: str, verb: str, htmx: bool = True, **data):
    return client.post(
        reverse(f"snapshot_{verb}", args=[snapshot_id]), data, headers=HX if htmx else {}
    )


def last_entry() -> AuditEntry:
    return AuditEntry.objects.order_by("-seq").first()


def test_an_admin_deactivates_then_activates_and_gets_the_row_back(
    daytona_engine, make_snapshot, admin_client
) -> None:
    snapshot = make_snapshot()
    response = act(admin_client, snapshot["id"], "deactivate")
    assert response.status_code == 200
    assert response.content.decode().startswith(f'<tr id="snap-{snapshot["id"]}"')
    assert "tone-idle" in response.content.decode()
    assert "sandbar:toast" in response["HX-Trigger"]
    wait_for_snapshot(daytona_engine, snapshot["id"], "inactive")
    entry = last_entry()
    assert (entry.action, entry.outcome, entry.target_id, entry.target_name) == (
        "snapshot.deactivate",
        "success",
        snapshot["id"],
        snapshot["name"],
    )
    response = act(admin_client, snapshot["id"], "activate", view="page")
    assert response.status_code == 200
    assert 'id="snapshot-head"' in response.content.decode()
    wait_for_snapshot(daytona_engine, snapshot["id"], "active")
    assert last_entry().action == "snapshot.activate"


@pytest.mark.parametrize("who", ["member_client", "viewer_client"])
def test_members_and_viewers_cannot_change_snapshots(
    daytona_engine, make_snapshot, request, who
) -> None:
    snapshot = make_snapshot()
    response = act(request.getfixturevalue(who), snapshot["id"], "delete")
    assert response.status_code == 403
    assert engine_call(daytona_engine, "GET", f"/snapshots/{snapshot['id']}").status_code == 200
    assert (last_entry().action, last_entry().outcome) == ("snapshot.delete", "denied")


def test_delete_removes_the_row_and_records_it(daytona_engine, make_snapshot, admin_client):
    snapshot = make_snapshot()
    response = act(admin_client, snapshot["id"], "delete")
    assert response.status_code == 200
    assert response.content == b""
    assert engine_call(daytona_engine, "GET", f"/snapshots/{snapshot['id']}").status_code == 404
    assert (last_entry().action, last_entry().outcome) == ("snapshot.delete", "success")


def test_delete_from_its_page_goes_back_to_the_list(daytona_engine, make_snapshot, admin_client):
    snapshot = make_snapshot()
    response = act(admin_client, snapshot["id"], "delete", view="page")
    assert response["HX-Redirect"] == reverse("snapshots")


def test_without_htmx_an_action_redirects_with_a_message(
    daytona_engine, make_snapshot, admin_client
) -> None:
    snapshot = make_snapshot()
    response = act(admin_client, snapshot["id"], "deactivate", htmx=False)
    assert response.status_code == 302
    assert response["Location"] == reverse("snapshot", args=[snapshot["id"]])
    response = act(admin_client, snapshot["id"], "delete", htmx=False)
    assert response["Location"] == reverse("snapshots")


def test_a_snapshot_in_use_is_not_deleted_and_the_row_says_why(
    daytona_engine, make_snapshot, admin_client
) -> None:
    snapshot = make_snapshot()
    name = f"uses-{uuid.uuid4().hex[:8]}"
    made = engine_call(
        daytona_engine, "POST", "/sandbox", json={"name": name, "snapshot": snapshot["name"]}
    )
    assert made.status_code == 200, made.text
    try:
        response = act(admin_client, snapshot["id"], "delete")
        assert response.status_code == 409
        html = response.content.decode()
        assert 'class="row-problem"' in html
        # Named by the sandbox's name (Daytona's own words give its id).
        assert f"Delete refused: {name} uses it; delete that sandbox first" in html
        assert made.json()["id"] not in html
        assert (last_entry().action, last_entry().outcome) == ("snapshot.delete", "failure")
        page = admin_client.get(reverse("snapshot", args=[snapshot["id"]])).content.decode()
        assert name in page  # listed under "Sandboxes made from it"
    finally:
        engine_call(daytona_engine, "DELETE", f"/sandbox/{made.json()['id']}")


def test_an_action_that_does_not_apply_is_refused_before_daytona(
    daytona_engine, make_snapshot, admin_client
) -> None:
    snapshot = make_snapshot()
    response = act(admin_client, snapshot["id"], "activate")
    assert response.status_code == 409
    assert b"it is active" in response.content


def test_the_shared_default_snapshot_cannot_be_deleted(daytona_engine, admin_client) -> None:
    page = engine_call(daytona_engine, "GET", "/snapshots", params={"limit": 200}).json()
    default = next(s for s in page["items"] if s["general"])
    response = act(admin_client, default["id"], "delete")
    assert response.status_code == 409
    assert b"shared system snapshot" in response.content


def test_acting_on_a_vanished_snapshot_is_a_404_with_a_toast(daytona_engine, admin_client):
    response = act(admin_client, "vanished-id", "deactivate")
    assert response.status_code == 404
    assert "sandbar:toast" in response["HX-Trigger"]
