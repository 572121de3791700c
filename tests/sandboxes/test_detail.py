import pytest
from django.urls import reverse

from dashboard.audit.models import AuditEntry
from tests.sandboxes.conftest import HX, engine_call


def page(sandbox_id: str) -> str:
    return reverse("sandbox", args=[sandbox_id])


def test_the_page_shows_the_overview_with_the_id_to_copy(
    daytona_engine, make_sandbox, viewer_client
) -> None:
    sandbox = make_sandbox(owner="mel", labels={"team": "web"})
    response = viewer_client.get(page(sandbox["id"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-copy="{sandbox["id"]}"' in html
    assert "sandbar-default" in html
    assert "team=web" in html
    assert 'class="badge tone-running"' in html
    # A viewer reads the settings; there is nothing to submit.
    assert reverse("sandbox_labels", args=[sandbox["id"]]) not in html


def test_a_sandbox_can_be_opened_by_name(daytona_engine, make_sandbox, viewer_client) -> None:
    sandbox = make_sandbox()
    assert viewer_client.get(page(sandbox["name"])).status_code == 200


def test_the_owner_gets_the_editable_settings_and_the_action_bar(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel")
    html = member_client.get(page(sandbox["id"])).content.decode()
    assert reverse("sandbox_labels", args=[sandbox["id"]]) in html
    assert reverse("sandbox_lifecycle", args=[sandbox["id"]]) in html
    assert reverse("sandbox_network", args=[sandbox["id"]]) in html
    assert reverse("sandbox_action", args=[sandbox["id"], "stop"]) in html


# The tabs are filled by the terminal area (tested in tests/terminal/).
@pytest.mark.parametrize("tab", ["terminal", "logs", "files"])
def test_the_tabs_hold_their_panels(daytona_engine, make_sandbox, member_client, tab) -> None:
    sandbox = make_sandbox()
    html = member_client.get(page(sandbox["id"]), {"tab": tab}).content.decode()
    assert f"data-{tab}" in html


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_a_sandbox_that_is_gone_says_so(daytona_engine, member_client, htmx) -> None:
    response = member_client.get(page("vanished-one"), headers=HX if htmx else {})
    assert response.status_code == 404
    assert "This sandbox no longer exists" in response.content.decode()


def test_the_head_alone_for_htmx(daytona_engine, make_sandbox, member_client) -> None:
    sandbox = make_sandbox()
    response = member_client.get(page(sandbox["id"]), {"part": "head"}, headers=HX)
    assert response.content.decode().startswith('<div class="sandbox-head"')


def test_an_unreachable_daytona_shows_a_banner(db, settings, member_client) -> None:
    settings.DAYTONA_API_URL = "http://127.0.0.1:9/api"
    settings.DAYTONA_API_KEY = "k"
    response = member_client.get(page("anything"))
    assert response.status_code == 503
    assert "Daytona is not answering." in response.content.decode()


# Editing: labels, lifecycle, network.


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_the_owner_replaces_the_labels_and_the_owner_label_stays(
    daytona_engine, make_sandbox, member_client, htmx
) -> None:
    sandbox = make_sandbox(owner="mel", labels={"old": "1"})
    response = member_client.post(
        reverse("sandbox_labels", args=[sandbox["id"]]),
        {"label_key": ["team", "tier", ""], "label_value": ["web", "prod", ""]},
        headers=HX if htmx else {},
    )
    assert response.status_code == (200 if htmx else 302)
    labels = engine_call(daytona_engine, "GET", f"/sandbox/{sandbox['id']}").json()["labels"]
    assert labels == {"team": "web", "tier": "prod", "sandbar.owner": "mel"}
    if htmx:
        assert response.content.decode().lstrip().startswith('<div id="settings"')
    entry = AuditEntry.objects.order_by("-seq").first()
    assert (entry.action, entry.outcome) == ("sandbox.labels", "success")


def test_duplicate_label_keys_are_refused_and_the_input_kept(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel", labels={"old": "1"})
    response = member_client.post(
        reverse("sandbox_labels", args=[sandbox["id"]]),
        {"label_key": ["a", "a"], "label_value": ["x", "y"]},
        headers=HX,
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "appears twice" in html
    assert 'value="y"' in html
    assert engine_call(daytona_engine, "GET", f"/sandbox/{sandbox['id']}").json()["labels"] == {
        "sandbar.owner": "mel",
        "old": "1",
    }


def test_a_member_cannot_edit_someone_elses_labels(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="max")
    url = reverse("sandbox_labels", args=[sandbox["id"]])
    response = member_client.post(url, {"label_key": ["a"], "label_value": ["b"]}, headers=HX)
    assert response.status_code == 403


def test_the_lifecycle_intervals_are_set(daytona_engine, make_sandbox, member_client) -> None:
    sandbox = make_sandbox(owner="mel")
    response = member_client.post(
        reverse("sandbox_lifecycle", args=[sandbox["id"]]),
        {"auto_stop": "0", "auto_archive": "60", "auto_delete": "0"},
        headers=HX,
    )
    assert response.status_code == 200
    data = engine_call(daytona_engine, "GET", f"/sandbox/{sandbox['id']}").json()
    assert (data["autoStopInterval"], data["autoArchiveInterval"], data["autoDeleteInterval"]) == (
        0,
        60,
        0,
    )
    assert "Now On stop." in response.content.decode()


def test_an_empty_auto_delete_turns_it_off(daytona_engine, make_sandbox, member_client) -> None:
    sandbox = make_sandbox(owner="mel", autoDeleteInterval=30)
    member_client.post(
        reverse("sandbox_lifecycle", args=[sandbox["id"]]),
        {"auto_stop": "15", "auto_archive": "", "auto_delete": ""},
        headers=HX,
    )
    assert (
        engine_call(daytona_engine, "GET", f"/sandbox/{sandbox['id']}").json()["autoDeleteInterval"]
        < 0
    )


def test_a_bad_interval_is_a_400_with_the_reason(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel")
    response = member_client.post(
        reverse("sandbox_lifecycle", args=[sandbox["id"]]), {"auto_stop": "soon"}, headers=HX
    )
    assert response.status_code == 400
    assert "Enter a whole number." in response.content.decode()
    assert 'value="soon"' in response.content.decode()


def test_previews_are_made_public(daytona_engine, make_sandbox, member_client) -> None:
    sandbox = make_sandbox(owner="mel")
    response = member_client.post(
        reverse("sandbox_network", args=[sandbox["id"]]), {"public": "on"}, headers=HX
    )
    assert response.status_code == 200
    assert engine_call(daytona_engine, "GET", f"/sandbox/{sandbox['id']}").json()["public"]


def network_url(sandbox: dict) -> str:
    return reverse("sandbox_network", args=[sandbox["id"]])


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("203.0.113.0/24, the internet", "“the internet” is not a network"),
        ("203.0.113.0", "a slash and a prefix length"),
        ("2001:db8::/32", "is not an IPv4 address"),
        (",".join(f"198.51.{i}.0/24" for i in range(11)), "At most 10 networks"),
    ],
)
def test_a_bad_allow_list_is_refused_by_the_form_with_what_was_typed_kept(
    daytona_engine, make_sandbox, member_client, htmx, typed, reason
) -> None:
    sandbox = make_sandbox(owner="mel")
    response = member_client.post(
        network_url(sandbox), {"network_allow_list": typed}, headers=HX if htmx else {}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert reason in html
    assert 'id="network-error"' in html and 'aria-invalid="true"' in html
    assert f'value="{typed}"' in html
    saved = engine_call(daytona_engine, "GET", f"/sandbox/{sandbox['id']}").json()
    assert saved["networkAllowList"] is None


def test_an_allow_list_is_saved_on_the_sandbox_in_canonical_form(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel")
    response = member_client.post(
        network_url(sandbox), {"network_allow_list": " 203.0.113.9/24 ,198.51.100.7/32"}
    )
    assert response.status_code == 302
    saved = engine_call(daytona_engine, "GET", f"/sandbox/{sandbox['id']}").json()
    assert saved["networkAllowList"] == "203.0.113.0/24,198.51.100.7/32"
    assert saved["networkBlockAll"] is False
    page_html = member_client.get(page(sandbox["id"])).content.decode()
    assert 'value="203.0.113.0/24,198.51.100.7/32"' in page_html
    # Emptying the field lifts the narrowing.
    member_client.post(network_url(sandbox), {"network_allow_list": ""}, headers=HX)
    cleared = engine_call(daytona_engine, "GET", f"/sandbox/{sandbox['id']}").json()
    assert cleared["networkAllowList"] is None


def test_blocking_all_and_allowing_some_cannot_go_together(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel")
    response = member_client.post(
        network_url(sandbox),
        {"network_block_all": "on", "network_allow_list": "203.0.113.0/24"},
        headers=HX,
    )
    assert response.status_code == 400
    assert "cannot go together" in response.content.decode()
    saved = engine_call(daytona_engine, "GET", f"/sandbox/{sandbox['id']}").json()
    assert saved["networkBlockAll"] is False


def test_blocking_all_network_is_saved_on_the_sandbox(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel")
    response = member_client.post(
        reverse("sandbox_network", args=[sandbox["id"]]), {"network_block_all": "on"}, headers=HX
    )
    assert response.status_code == 200
    saved = engine_call(daytona_engine, "GET", f"/sandbox/{sandbox['id']}").json()
    assert saved["networkBlockAll"] is True
