import pytest
from django.urls import reverse

from dashboard.audit.models import AuditEntry
from tests.snapshots.conftest import HX, engine_call, wait_for_snapshot


def bulk(client, verb: str, ids: list[str], htmx: bool = True):
    return client.post(
        reverse("snapshots_bulk"), {"verb": verb, "ids": ids}, headers=HX if htmx else {}
    )


def test_an_admin_deactivates_several_and_hears_what_was_refused(
    daytona_engine, make_snapshot, admin_client
) -> None:
    one, two = make_snapshot(), make_snapshot()
    engine_call(daytona_engine, "POST", f"/snapshots/{two['id']}/deactivate")
    response = bulk(admin_client, "deactivate", [one["id"], two["id"], "gone-one"])
    assert response.status_code == 200
    html = response.content.decode()
    assert "Deactivate: 1 of 3 done; 2 refused." in html
    assert f"<strong>{two['name']}</strong>: it is inactive" in html
    assert "gone-one</strong>: it no longer exists" in html
    assert "snapshots-changed" in response["HX-Trigger"]
    assert "sandbar:toast" in response["HX-Trigger"]
    wait_for_snapshot(daytona_engine, one["id"], "inactive")
    entries = AuditEntry.objects.filter(action="snapshot.deactivate")
    assert [e.target_id for e in entries] == [one["id"]]


def test_bulk_delete_without_htmx_redirects_with_the_summary(
    daytona_engine, make_snapshot, admin_client
) -> None:
    one, two = make_snapshot(), make_snapshot()
    response = bulk(admin_client, "delete", [one["id"], two["id"]], htmx=False)
    assert response.status_code == 302
    assert response["Location"] == reverse("snapshots")
    for snapshot in (one, two):
        found = engine_call(daytona_engine, "GET", f"/snapshots/{snapshot['id']}")
        assert found.status_code == 404


@pytest.mark.parametrize("who", ["member_client", "viewer_client"])
def test_only_admins_act_in_bulk(daytona_engine, make_snapshot, request, who) -> None:
    snapshot = make_snapshot()
    response = bulk(request.getfixturevalue(who), "delete", [snapshot["id"]])
    assert response.status_code == 403
    assert engine_call(daytona_engine, "GET", f"/snapshots/{snapshot['id']}").status_code == 200
    assert AuditEntry.objects.order_by("-seq").first().outcome == "denied"


@pytest.mark.parametrize(
    "data", [{"verb": "delete"}, {"verb": "explode", "ids": ["a"]}, {"ids": ["../x"]}]
)
def test_a_bulk_request_without_action_or_ids_is_a_400(daytona_engine, admin_client, data):
    response = admin_client.post(reverse("snapshots_bulk"), data, headers=HX)
    assert response.status_code == 400


def test_the_list_offers_selection_only_to_admins(
    daytona_engine, make_snapshot, admin_client, viewer_client
) -> None:
    snapshot = make_snapshot()
    html = admin_client.get(reverse("snapshots")).content.decode()
    assert f'value="{snapshot["id"]}" form="bulk-form"' in html
    assert 'id="bulk-bar"' in html and "data-select-all" in html
    viewer = viewer_client.get(reverse("snapshots")).content.decode()
    assert 'id="bulk-bar"' not in viewer and 'form="bulk-form"' not in viewer
