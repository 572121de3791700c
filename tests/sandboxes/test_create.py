import uuid

import pytest
from django.urls import reverse

from dashboard.accounts.models import ConnectionQuota
from dashboard.audit.models import AuditEntry
from tests.html_attrs import elements, text_of
from tests.sandboxes.conftest import HX, engine_call

URL = "/sandboxes/new/"


def name() -> str:
    return f"new-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cleanup(daytona_engine):
    names: list[str] = []
    yield names
    for n in names:
        engine_call(daytona_engine, "DELETE", f"/sandbox/{n}")


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_the_form_offers_every_field(daytona_engine, member_client, htmx) -> None:
    response = member_client.get(URL, headers=HX if htmx else {})
    assert response.status_code == 200
    html = response.content.decode()
    for field in (
        "name",
        "snapshot",
        "cpu",
        "memory",
        "disk",
        "auto_stop",
        "auto_archive",
        "auto_delete",
        "ephemeral",
        "env_key",
        "label_key",
        "public",
        "network_block_all",
    ):
        assert f'name="{field}"' in html, field
    assert ("<html" in html) is not htmx


def test_a_viewer_may_not_create(daytona_engine, viewer_client) -> None:
    assert viewer_client.get(URL).status_code == 403
    assert viewer_client.post(URL, {"name": name()}).status_code == 403


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_a_member_creates_a_sandbox_they_own_and_its_page_opens(
    daytona_engine, member_client, cleanup, htmx
) -> None:
    new = name()
    cleanup.append(new)
    response = member_client.post(
        URL,
        {
            "name": new,
            "env_key": ["GREETING", ""],
            "env_value": ["hello", ""],
            "label_key": ["team"],
            "label_value": ["web"],
            "auto_stop": "30",
            "auto_archive": "",
            "auto_delete": "",
            "once": uuid.uuid4().hex,
        },
        headers=HX if htmx else {},
    )
    created = engine_call(daytona_engine, "GET", f"/sandbox/{new}").json()
    page = reverse("sandbox", args=[created["id"]])
    if htmx:
        assert response["HX-Redirect"] == page
    else:
        assert response.status_code == 302
        assert response["Location"] == page
    assert created["labels"] == {"team": "web", "sandbar.owner": "mel"}
    assert created["env"] == {"GREETING": "hello"}
    assert created["autoStopInterval"] == 30
    assert created["state"] == "started"
    entry = AuditEntry.objects.order_by("-seq").first()
    assert (entry.action, entry.outcome, entry.target_id) == (
        "sandbox.create",
        "success",
        created["id"],
    )


def test_ephemeral_means_deleted_on_stop(daytona_engine, member_client, cleanup) -> None:
    new = name()
    cleanup.append(new)
    member_client.post(URL, {"name": new, "ephemeral": "on"})
    assert engine_call(daytona_engine, "GET", f"/sandbox/{new}").json()["autoDeleteInterval"] == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"label_key": ["a", "a"], "label_value": ["1", "2"]}, "appears twice"),
        ({"env_key": ["1BAD"], "env_value": ["x"]}, "is not a valid key"),
        ({"label_key": ["sandbar.owner"], "label_value": ["someone"]}, "is set by Sandbar"),
        ({"auto_stop": "-5"}, "greater than or equal to 0"),
        ({"volume_id": ["nope"], "volume_path": ["/data"]}, "Choose a volume"),
    ],
)
def test_bad_input_is_refused_on_the_form_and_the_input_kept(
    daytona_engine, member_client, data, message
) -> None:
    response = member_client.post(URL, {"name": "keep-me", **data}, headers=HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert 'value="keep-me"' in html


def test_a_name_with_spaces_is_refused(daytona_engine, member_client) -> None:
    response = member_client.post(URL, {"name": "has spaces"})
    assert "Use letters, digits" in response.content.decode()


def test_a_name_already_taken_is_shown_on_the_name_field(
    daytona_engine, make_sandbox, member_client
) -> None:
    taken = make_sandbox()
    response = member_client.post(
        URL, {"name": taken["name"], "label_key": ["k"], "label_value": ["v"]}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "already exists" in html
    assert 'value="k"' in html  # the rest of the input is kept
    entry = AuditEntry.objects.order_by("-seq").first()
    assert (entry.action, entry.outcome) == ("sandbox.create", "failure")


def test_resources_beyond_the_limits_are_refused_with_daytonas_message(
    daytona_engine, member_client
) -> None:
    response = member_client.post(URL, {"name": name(), "cpu": "64"})
    assert response.status_code == 200
    assert "cpu must be at most" in response.content.decode()


def test_a_double_submitted_form_creates_one_sandbox(daytona_engine, member_client, cleanup):
    new = name()
    cleanup.append(new)
    data = {"name": new, "once": "create-once-1"}
    first = member_client.post(URL, data)
    second = member_client.post(URL, data)
    assert first.status_code == 302
    assert second.status_code == 200
    assert "already sent" in second.content.decode()


def test_a_member_over_their_personal_quota_is_refused_before_daytona_is_asked(
    daytona_engine, make_sandbox, member_user, member_client
) -> None:
    ConnectionQuota.objects.create(user=member_user, quota_sandboxes=1)
    make_sandbox(owner="mel")
    new = name()
    response = member_client.post(URL, {"name": new})
    assert response.status_code == 200
    assert "Your quota allows 1 of sandboxes" in response.content.decode()
    assert engine_call(daytona_engine, "GET", f"/sandbox/{new}").status_code == 404
    entry = AuditEntry.objects.order_by("-seq").first()
    assert (entry.action, entry.outcome) == ("sandbox.create", "denied")


# -- errors at their field, defaults that are values -----------------------------------


@pytest.fixture
def ready_volume(daytona_engine):
    volume = engine_call(daytona_engine, "POST", "/volumes", json={"name": name()}).json()
    yield volume
    engine_call(daytona_engine, "DELETE", f"/volumes/{volume['id']}")


def test_a_field_error_is_tied_to_its_input_by_id(daytona_engine, member_client) -> None:
    html = member_client.post(URL, {"auto_stop": "-5"}, headers=HX).content.decode()
    (field,) = elements(html, "input", name="auto_stop")
    assert field["aria-invalid"] == "true"
    described = field["aria-describedby"].split()
    assert "greater than or equal to 0" in text_of(html, "id_auto_stop_error")
    assert set(described) == {"id_auto_stop_helptext", "id_auto_stop_error"}
    assert text_of(html, "id_auto_stop_helptext")  # the help is there under the same id
    assert not elements(html, "div", **{"class": "alert alert-error", "role": "alert"})


def test_the_blank_volume_row_holds_a_real_path_not_a_placeholder(
    daytona_engine, member_client, ready_volume
) -> None:
    html = member_client.get(URL).content.decode()
    (path,) = elements(html, "input", name="volume_path")
    assert path["value"] == "/home/daytona/volume"
    assert "placeholder" not in path


def test_a_blank_volume_row_sent_as_it_is_mounts_nothing(
    daytona_engine, member_client, ready_volume, cleanup
) -> None:
    new = name()
    cleanup.append(new)
    data = {"name": new, "volume_id": [""], "volume_path": ["/home/daytona/volume"]}
    assert member_client.post(URL, data).status_code == 302
    assert engine_call(daytona_engine, "GET", f"/sandbox/{new}").json()["volumes"] == []


@pytest.mark.parametrize(
    ("path", "words"),
    [("data", "absolute path"), ("/srv/../etc", "without . or .."), ("", "/home/daytona/")],
)
def test_a_bad_mount_path_is_marked_on_its_input_not_on_top(
    daytona_engine, member_client, ready_volume, path, words
) -> None:
    data = {"volume_id": [ready_volume["id"]], "volume_path": [path]}
    html = member_client.post(URL, data, headers=HX).content.decode()
    (field,) = elements(html, "input", name="volume_path")
    assert field["aria-invalid"] == "true"
    assert words in text_of(html, field["aria-describedby"])
    assert field["value"] == path
    (chosen,) = elements(html, "option", value=ready_volume["id"])
    assert "selected" in chosen
    assert not elements(html, "div", **{"class": "alert alert-error", "role": "alert"})


def test_a_bad_env_key_is_marked_on_its_row(daytona_engine, member_client) -> None:
    data = {"env_key": ["GOOD", "1BAD"], "env_value": ["x", "y"]}
    html = member_client.post(URL, data, headers=HX).content.decode()
    good, bad = elements(html, "input", name="env_key")
    assert "aria-invalid" not in good and bad["aria-invalid"] == "true"
    assert "“1BAD” is not a valid key" in text_of(html, bad["aria-describedby"])


def test_daytonas_refusal_of_a_mount_path_shows_at_that_path(
    daytona_engine, member_client, ready_volume
) -> None:
    data = {"volume_id": [ready_volume["id"]], "volume_path": ["/usr/lib/data"]}
    html = member_client.post(URL, data, headers=HX).content.decode()
    (field,) = elements(html, "input", name="volume_path")
    assert field["aria-invalid"] == "true"
    assert "Mount path /usr/lib/data cannot be inside" in text_of(html, field["aria-describedby"])
    assert "mountPath" not in html


def test_daytonas_refusal_of_a_snapshot_shows_at_the_snapshot(
    daytona_engine, member_client
) -> None:
    html = member_client.post(URL, {"snapshot": "no-such-snap"}, headers=HX).content.decode()
    (field,) = elements(html, "input", name="snapshot")
    assert field["aria-invalid"] == "true"
    assert "no-such-snap" in text_of(html, "snapshot-error")
