from django.urls import reverse

from dashboard.audit.models import AuditEntry
from tests.sandboxes.conftest import HX, engine_call, wait_for_state

URL = "/sandboxes/bulk/"


def test_the_confirmation_lists_the_eligible_and_says_why_others_are_skipped(
    daytona_engine, make_sandbox, member_client
) -> None:
    mine = make_sandbox(owner="mel")
    theirs = make_sandbox(owner="max")
    already = make_sandbox(owner="mel")
    engine_call(daytona_engine, "POST", f"/sandbox/{already['id']}/stop")
    wait_for_state(daytona_engine, already["id"], "stopped")
    response = member_client.post(
        URL, {"verb": "stop", "ids": [mine["id"], theirs["id"], already["id"]]}, headers=HX
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Stop 1 sandbox?" in html
    assert f'<input type="hidden" name="ids" value="{mine["id"]}">' in html
    assert f'value="{theirs["id"]}"' not in html
    assert "Only its owner or an admin" in html
    assert "Cannot stop while stopped." in html
    assert ">Stop 1 sandbox</button>" in html
    # Nothing happened yet.
    assert engine_call(daytona_engine, "GET", f"/sandbox/{mine['id']}").json()["state"] == (
        "started"
    )


def test_a_bulk_stop_runs_on_each_and_reports_a_partial_failure(
    daytona_engine, make_sandbox, admin_client
) -> None:
    first = make_sandbox(owner="mel")
    second = make_sandbox(owner="max")
    doomed = make_sandbox(owner="max")
    ids = [first["id"], second["id"], doomed["id"]]
    confirm = admin_client.post(URL, {"verb": "stop", "ids": ids}, headers=HX)
    assert "Stop 3 sandboxes?" in confirm.content.decode()
    # Between the confirmation and the click, someone deletes one through the SDK.
    engine_call(daytona_engine, "DELETE", f"/sandbox/{doomed['id']}")
    wait_for_state(daytona_engine, doomed["id"], "destroyed")
    response = admin_client.post(
        URL, {"verb": "stop", "ids": ids, "confirmed": "1", "once": "bulk-1"}, headers=HX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "Stop: 2 of 3 done" in html
    assert "1 failed" in html
    assert f"{doomed['id']}</a>: It no longer exists." in html
    assert "2 of 3 done" in response["HX-Trigger"]
    for sandbox in (first, second):
        wait_for_state(daytona_engine, sandbox["id"], "stopped")
    outcomes = dict(
        AuditEntry.objects.filter(action="sandbox.stop", target_id__in=ids).values_list(
            "target_id", "outcome"
        )
    )
    assert outcomes == {first["id"]: "success", second["id"]: "success"}


def test_a_bulk_delete_is_sent_once(daytona_engine, make_sandbox, admin_client) -> None:
    sandbox = make_sandbox()
    data = {"verb": "delete", "ids": [sandbox["id"]], "confirmed": "1", "once": "bulk-twice"}
    assert admin_client.post(URL, data, headers=HX).status_code == 200
    assert admin_client.post(URL, data, headers=HX).status_code == 409
    assert AuditEntry.objects.filter(action="sandbox.delete", target_id=sandbox["id"]).count() == 1


def test_a_viewer_has_nothing_eligible(daytona_engine, make_sandbox, viewer_client) -> None:
    sandbox = make_sandbox()
    response = viewer_client.post(
        URL, {"verb": "stop", "ids": [sandbox["id"]], "confirmed": "1"}, headers=HX
    )
    assert "Stop 0 sandboxes?" in response.content.decode()
    assert engine_call(daytona_engine, "GET", f"/sandbox/{sandbox['id']}").json()["state"] == (
        "started"
    )


def test_a_bulk_request_without_a_verb_is_a_400(daytona_engine, admin_client) -> None:
    response = admin_client.post(URL, {"ids": ["x"]}, headers=HX)
    assert response.status_code == 400
    assert admin_client.post(URL, {"verb": "explode", "ids": ["x"]}).status_code == 400
    assert reverse("sandboxes_bulk") == URL
