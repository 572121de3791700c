import re

from django.urls import reverse

from dashboard.audit.models import AuditEntry
from tests.sandboxes.conftest import HX, engine_call, wait_for_state

URL = "/sandboxes/bulk/"
ITEM_URL = "/sandboxes/bulk/item/"


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


def _steps(html: str) -> list[tuple[str, str]]:
    """The (token, sandbox id) of each step the progress dialog will run."""
    return re.findall(r'data-token="([0-9a-f]{32})" data-id="([^"]+)"', html)


def test_a_stepwise_bulk_stop_runs_each_as_its_own_request_and_reports_partial_failure(
    daytona_engine, make_sandbox, admin_client
) -> None:
    first = make_sandbox(owner="mel")
    second = make_sandbox(owner="max")
    doomed = make_sandbox(owner="max")
    gone = make_sandbox(owner="max")
    ids = [first["id"], second["id"], doomed["id"], gone["id"]]
    engine_call(daytona_engine, "DELETE", f"/sandbox/{gone['id']}")
    wait_for_state(daytona_engine, gone["id"], "destroyed")
    data = {"verb": "stop", "ids": ids, "confirmed": "1", "once": "steps-1", "steps": "1"}
    response = admin_client.post(URL, data, headers=HX)
    html = response.content.decode()
    assert response.status_code == 200
    # Nothing has run yet: the dialog shows a bar at 0 and one step per eligible sandbox.
    assert 'data-total="4"' in html
    assert "<span data-bulk-done>0</span> of 4 done" in html
    assert f'data-id="{gone["id"]}" data-name="{gone["id"]}" data-error="It no longer exists."' in (
        html
    )
    steps = _steps(html)
    assert [i for _, i in steps] == [first["id"], second["id"], doomed["id"]]
    assert engine_call(daytona_engine, "GET", f"/sandbox/{first['id']}").json()["state"] == (
        "started"
    )
    # Deleted elsewhere between the confirmation and its turn: a failure on that step only.
    engine_call(daytona_engine, "DELETE", f"/sandbox/{doomed['id']}")
    wait_for_state(daytona_engine, doomed["id"], "destroyed")
    answers = [admin_client.post(ITEM_URL, {"token": t}).json() for t, _ in steps]
    assert [a["ok"] for a in answers] == [True, True, False]
    assert answers[2] == {
        "id": doomed["id"],
        "name": doomed["name"],
        "ok": False,
        "error": "It no longer exists.",
    }
    for sandbox in (first, second):
        wait_for_state(daytona_engine, sandbox["id"], "stopped")
    outcomes = dict(
        AuditEntry.objects.filter(action="sandbox.stop", target_id__in=ids).values_list(
            "target_id", "outcome"
        )
    )
    assert outcomes == {first["id"]: "success", second["id"]: "success"}
    # The same confirmation sent again (a double click) prepares nothing new.
    assert admin_client.post(URL, data, headers=HX).status_code == 409


def test_a_bulk_step_runs_once_and_only_for_whoever_confirmed_it(
    daytona_engine, make_sandbox, admin_client, member_client
) -> None:
    sandbox = make_sandbox(owner="mel")
    data = {"verb": "delete", "ids": [sandbox["id"]], "confirmed": "1", "steps": "1"}
    [(token, _)] = _steps(admin_client.post(URL, data, headers=HX).content.decode())
    # Another person cannot replay someone else's token.
    assert member_client.post(ITEM_URL, {"token": token}).status_code == 403
    assert admin_client.post(ITEM_URL, {"token": token}).json()["ok"] is True
    twice = admin_client.post(ITEM_URL, {"token": token})
    assert twice.status_code == 409
    assert twice.json()["duplicate"] is True
    assert AuditEntry.objects.filter(action="sandbox.delete", target_id=sandbox["id"]).count() == 1
    unknown = admin_client.post(ITEM_URL, {"token": "0" * 32})
    assert unknown.status_code == 410
    assert "expired" in unknown.json()["error"]


def test_a_members_steps_leave_other_peoples_sandboxes_alone(
    daytona_engine, make_sandbox, member_client
) -> None:
    mine = make_sandbox(owner="mel")
    theirs = make_sandbox(owner="max")
    data = {"verb": "stop", "ids": [mine["id"], theirs["id"]], "confirmed": "1", "steps": "1"}
    html = member_client.post(URL, data, headers=HX).content.decode()
    assert [i for _, i in _steps(html)] == [mine["id"]]
    assert 'data-total="1"' in html
    assert "1 skipped" in html
