import pytest
from django.urls import reverse

from dashboard.accounts.models import ConnectionQuota
from dashboard.audit.models import AuditEntry
from tests.sandboxes.conftest import HX, engine_call, wait_for_state


def act(client, sandbox_id: str, verb: str, htmx: bool = True, **data):
    url = reverse("sandbox_action", args=[sandbox_id, verb])
    return client.post(url, data, headers=HX if htmx else {})


def last_entry() -> AuditEntry:
    return AuditEntry.objects.order_by("-seq").first()


def stopped(engine, make_sandbox, owner: str = "mel") -> dict:
    sandbox = make_sandbox(owner=owner)
    engine_call(engine, "POST", f"/sandbox/{sandbox['id']}/stop")
    wait_for_state(engine, sandbox["id"], "stopped")
    return sandbox


def test_a_member_stops_their_own_sandbox_and_gets_its_row_back(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel")
    response = act(member_client, sandbox["id"], "stop")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith(f'<tr id="sb-{sandbox["id"]}"')
    assert "sandbar:toast" in response["HX-Trigger"]
    wait_for_state(daytona_engine, sandbox["id"], "stopped")
    entry = last_entry()
    assert (entry.action, entry.outcome, entry.target_id, entry.actor_name) == (
        "sandbox.stop",
        "success",
        sandbox["id"],
        "mel",
    )


def test_a_member_cannot_stop_someone_elses_sandbox(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="max")
    response = act(member_client, sandbox["id"], "stop")
    assert response.status_code == 403
    assert engine_call(daytona_engine, "GET", f"/sandbox/{sandbox['id']}").json()["state"] == (
        "started"
    )
    assert (last_entry().action, last_entry().outcome) == ("sandbox.stop", "denied")


def test_a_viewer_cannot_start_anything(daytona_engine, make_sandbox, viewer_client) -> None:
    sandbox = stopped(daytona_engine, make_sandbox, owner="vic")
    assert act(viewer_client, sandbox["id"], "start").status_code == 403


def test_an_admin_acts_on_anyones_sandbox(daytona_engine, make_sandbox, admin_client) -> None:
    sandbox = make_sandbox(owner="max")
    assert act(admin_client, sandbox["id"], "stop").status_code == 200
    wait_for_state(daytona_engine, sandbox["id"], "stopped")


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_each_action_works_from_the_state_it_applies_to(
    daytona_engine, make_sandbox, admin_client, htmx
) -> None:
    sandbox = stopped(daytona_engine, make_sandbox)
    sid = sandbox["id"]
    response = act(admin_client, sid, "start", htmx)
    assert response.status_code == (200 if htmx else 302)
    wait_for_state(daytona_engine, sid, "started")
    act(admin_client, sid, "stop", htmx)
    wait_for_state(daytona_engine, sid, "stopped")
    act(admin_client, sid, "archive", htmx)
    wait_for_state(daytona_engine, sid, "archived")
    act(admin_client, sid, "start", htmx)
    wait_for_state(daytona_engine, sid, "started")
    response = act(admin_client, sid, "delete", htmx)
    assert response.status_code == (200 if htmx else 302)
    if not htmx:
        assert response["Location"] == reverse("sandboxes")
    wait_for_state(daytona_engine, sid, "destroyed", "destroying")
    actions = list(
        AuditEntry.objects.filter(target_id=sid).order_by("seq").values_list("action", "outcome")
    )
    assert actions == [
        ("sandbox.start", "success"),
        ("sandbox.stop", "success"),
        ("sandbox.archive", "success"),
        ("sandbox.start", "success"),
        ("sandbox.delete", "success"),
    ]


def test_an_action_invalid_for_the_state_says_why_and_is_audited_as_failed(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel")
    response = act(member_client, sandbox["id"], "archive")
    assert response.status_code == 400
    assert "must be stopped" in response["HX-Trigger"]
    # The row comes back as it is, so the page shows the truth.
    assert response.content.decode().startswith(f'<tr id="sb-{sandbox["id"]}"')
    assert (last_entry().outcome, last_entry().action) == ("failure", "sandbox.archive")
    assert "must be stopped" in last_entry().error


def test_recover_on_a_sandbox_not_in_error_is_refused(
    daytona_engine, make_sandbox, admin_client
) -> None:
    sandbox = make_sandbox()
    assert act(admin_client, sandbox["id"], "recover").status_code == 400


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_acting_on_a_sandbox_that_vanished_says_so(db, daytona_engine, admin_client, htmx):
    response = act(admin_client, "gone-long-ago", "stop", htmx)
    if htmx:
        assert response.status_code == 404
        assert "no longer exists" in response["HX-Trigger"]
    else:
        assert response.status_code == 302
        page = admin_client.get(response["Location"])
        assert "no longer exists" in page.content.decode()


def test_a_double_clicked_action_runs_once(daytona_engine, make_sandbox, member_client) -> None:
    sandbox = make_sandbox(owner="mel")
    first = act(member_client, sandbox["id"], "stop", once="token-1")
    second = act(member_client, sandbox["id"], "stop", once="token-1")
    assert first.status_code == 200
    assert second.status_code == 409
    assert "runs once" in second["HX-Trigger"]
    assert AuditEntry.objects.filter(target_id=sandbox["id"], action="sandbox.stop").count() == 1


def test_an_action_from_the_sandbox_page_returns_the_page_head(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel")
    response = act(member_client, sandbox["id"], "stop", view="page")
    assert response.content.decode().startswith('<div class="sandbox-head" id="sandbox-head"')


def test_deleting_from_the_sandbox_page_goes_back_to_the_list(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel")
    response = act(member_client, sandbox["id"], "delete", view="page")
    assert response["HX-Redirect"] == reverse("sandboxes")


def test_an_action_needs_a_post(daytona_engine, make_sandbox, member_client) -> None:
    sandbox = make_sandbox(owner="mel")
    assert (
        member_client.get(reverse("sandbox_action", args=[sandbox["id"], "stop"])).status_code
        == 405
    )


def test_a_daytona_that_does_not_answer_gives_a_clear_error(db, settings, admin_client):
    settings.DAYTONA_API_URL = "http://127.0.0.1:9/api"
    settings.DAYTONA_API_KEY = "k"
    response = act(admin_client, "abc", "stop")
    assert response.status_code == 503
    assert "cannot be reached" in response["HX-Trigger"]


def test_starting_past_a_personal_cpu_quota_is_refused(
    daytona_engine, make_sandbox, member_user, member_client
) -> None:
    ConnectionQuota.objects.create(user=member_user, quota_cpu=1)
    make_sandbox(owner="mel")  # running: holds the one vCPU
    sandbox = stopped(daytona_engine, make_sandbox, owner="mel")
    response = act(member_client, sandbox["id"], "start")
    assert response.status_code == 429
    assert "Your quota allows 1 of vCPUs" in response["HX-Trigger"]
    assert (last_entry().action, last_entry().outcome) == ("sandbox.start", "denied")
