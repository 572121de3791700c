import uuid

import pytest
from django.urls import reverse

from dashboard.audit.models import AuditEntry
from tests.html_attrs import elements, text_of
from tests.volumes.conftest import HX, engine_call


def last_entry() -> AuditEntry:
    return AuditEntry.objects.order_by("-seq").first()


@pytest.mark.parametrize("htmx", [False, True])
def test_everyone_signed_in_sees_the_volumes_with_state(
    daytona_engine, make_volume, viewer_client, htmx
) -> None:
    volume = make_volume()
    response = viewer_client.get(reverse("volumes"), headers=HX if htmx else {})
    assert response.status_code == 200
    html = response.content.decode()
    assert volume["name"] in html
    assert "tone-running" in html  # ready is green
    assert ("<html" in html) is not htmx
    assert "Create volume" not in html  # viewers only read
    assert f"/volumes/{volume['id']}/delete/" not in html


def test_search_matches_name_id_or_state(daytona_engine, make_volume, member_client) -> None:
    wanted, other = make_volume(name="search-me-vol"), make_volume()
    html = member_client.get(reverse("volumes"), {"q": "search-me"}).content.decode()
    assert wanted["name"] in html and other["name"] not in html
    html = member_client.get(reverse("volumes"), {"q": other["id"][:13]}).content.decode()
    assert other["name"] in html and wanted["name"] not in html


def test_a_bad_page_is_a_400(daytona_engine, member_client) -> None:
    assert member_client.get(reverse("volumes"), {"page": "0"}).status_code == 400


def test_an_admin_creates_a_volume_and_the_list_is_told_to_reload(
    daytona_engine, admin_client
) -> None:
    name = f"new-{uuid.uuid4().hex[:8]}"
    response = admin_client.post(reverse("volume_create"), {"name": name}, headers=HX)
    assert response.status_code == 200
    assert "volumes-changed" in response["HX-Trigger"]
    assert 'id="create-volume"' in response.content.decode()
    found = engine_call(daytona_engine, "GET", f"/volumes/by-name/{name}")
    assert found.status_code == 200
    assert (last_entry().action, last_entry().outcome, last_entry().target_id) == (
        "volume.create",
        "success",
        found.json()["id"],
    )
    engine_call(daytona_engine, "DELETE", f"/volumes/{found.json()['id']}")


def test_without_htmx_a_create_redirects_to_the_list(daytona_engine, admin_client) -> None:
    name = f"plain-{uuid.uuid4().hex[:8]}"
    response = admin_client.post(reverse("volume_create"), {"name": name})
    assert response.status_code == 302
    assert response["Location"] == reverse("volumes")
    found = engine_call(daytona_engine, "GET", f"/volumes/by-name/{name}").json()
    engine_call(daytona_engine, "DELETE", f"/volumes/{found['id']}")


@pytest.mark.parametrize(
    ("name", "words"), [("-dash", "starting with a letter"), ("a" * 64, "at most 63")]
)
def test_a_bad_name_re_renders_the_form(daytona_engine, admin_client, name, words) -> None:
    response = admin_client.post(reverse("volume_create"), {"name": name}, headers=HX)
    assert response.status_code == 200
    assert words in response.content.decode()


def test_a_taken_name_is_refused_with_daytonas_reason(
    daytona_engine, make_volume, admin_client
) -> None:
    volume = make_volume()
    response = admin_client.post(reverse("volume_create"), {"name": volume["name"]}, headers=HX)
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert (last_entry().action, last_entry().outcome) == ("volume.create", "failure")


def test_an_admin_deletes_an_unused_volume(daytona_engine, make_volume, admin_client) -> None:
    volume = make_volume()
    response = admin_client.post(reverse("volume_delete", args=[volume["id"]]), headers=HX)
    assert response.status_code == 200
    assert response.content == b""
    assert "sandbar:toast" in response["HX-Trigger"]
    assert engine_call(daytona_engine, "GET", f"/volumes/{volume['id']}").status_code == 404
    assert (last_entry().action, last_entry().outcome) == ("volume.delete", "success")


def test_a_mounted_volume_is_not_deleted_and_the_row_says_why(
    daytona_engine, make_volume, admin_client
) -> None:
    volume = make_volume()
    name = f"mounts-{uuid.uuid4().hex[:8]}"
    made = engine_call(
        daytona_engine,
        "POST",
        "/sandbox",
        json={"name": name, "volumes": [{"volumeId": volume["id"], "mountPath": "/data"}]},
    )
    assert made.status_code == 200, made.text
    try:
        listing = admin_client.get(reverse("volumes")).content.decode()
        assert name in listing and "/data" in listing  # "Mounted by" says who, and where
        assert "delete those sandboxes first" in listing
        response = admin_client.post(reverse("volume_delete", args=[volume["id"]]), headers=HX)
        assert response.status_code == 409
        html = response.content.decode()
        # The refusal names the sandbox (Daytona's own words give its id).
        assert 'class="row-problem"' in html and f"Not deleted: {name} mounts it" in html
        assert made.json()["id"] not in html.replace(f"/sandboxes/{made.json()['id']}/", "")
        assert (last_entry().action, last_entry().outcome) == ("volume.delete", "failure")
    finally:
        engine_call(daytona_engine, "DELETE", f"/sandbox/{made.json()['id']}")


@pytest.mark.parametrize("who", ["member_client", "viewer_client"])
def test_only_admins_change_volumes(daytona_engine, make_volume, request, who) -> None:
    volume = make_volume()
    client = request.getfixturevalue(who)
    assert client.post(reverse("volume_create"), {"name": "nope"}).status_code == 403
    response = client.post(reverse("volume_delete", args=[volume["id"]]), headers=HX)
    assert response.status_code == 403
    assert engine_call(daytona_engine, "GET", f"/volumes/{volume['id']}").status_code == 200
    assert (last_entry().action, last_entry().outcome) == ("volume.delete", "denied")


def test_deleting_a_vanished_volume_is_a_404_with_a_toast(daytona_engine, admin_client) -> None:
    response = admin_client.post(reverse("volume_delete", args=["gone"]), headers=HX)
    assert response.status_code == 404
    assert "sandbar:toast" in response["HX-Trigger"]


def test_an_unreachable_daytona_shows_a_banner(admin_client, settings) -> None:
    settings.DAYTONA_API_URL = "http://127.0.0.1:9/api"
    settings.DAYTONA_API_KEY = "k"
    response = admin_client.get(reverse("volumes"))
    assert response.status_code == 200
    assert b"Daytona is not answering" in response.content


def test_an_admin_deletes_several_volumes_and_hears_of_the_mounted_one(
    daytona_engine, make_volume, admin_client
) -> None:
    free, mounted = make_volume(), make_volume()
    sandbox_name = f"m-{uuid.uuid4().hex[:8]}"
    made = engine_call(
        daytona_engine,
        "POST",
        "/sandbox",
        json={
            "name": sandbox_name,
            "volumes": [{"volumeId": mounted["id"], "mountPath": "/v"}],
        },
    )
    assert made.status_code == 200, made.text
    try:
        response = admin_client.post(
            reverse("volumes_bulk"),
            {"verb": "delete", "ids": [free["id"], mounted["id"]]},
            headers=HX,
        )
        assert response.status_code == 200
        html = response.content.decode()
        assert "Delete: 1 of 2 done; 1 refused." in html
        assert f"<strong>{mounted['name']}</strong>: {sandbox_name} mounts it" in html
        assert made.json()["id"] not in html
        assert "volumes-changed" in response["HX-Trigger"]
        assert engine_call(daytona_engine, "GET", f"/volumes/{free['id']}").status_code == 404
    finally:
        engine_call(daytona_engine, "DELETE", f"/sandbox/{made.json()['id']}")


@pytest.mark.parametrize("who", ["member_client", "viewer_client"])
def test_only_admins_delete_volumes_in_bulk(daytona_engine, make_volume, request, who) -> None:
    volume = make_volume()
    response = request.getfixturevalue(who).post(
        reverse("volumes_bulk"), {"verb": "delete", "ids": [volume["id"]]}, headers=HX
    )
    assert response.status_code == 403
    assert engine_call(daytona_engine, "GET", f"/volumes/{volume['id']}").status_code == 200


def test_a_bulk_delete_without_ids_is_a_400(daytona_engine, admin_client) -> None:
    response = admin_client.post(reverse("volumes_bulk"), {"verb": "delete"}, headers=HX)
    assert response.status_code == 400


def test_auto_refresh_keeps_the_volume_list_polling(daytona_engine, make_volume, admin_client):
    make_volume()
    headers = {**HX, "HX-Trigger": "results"}
    response = admin_client.get(reverse("volumes"), {"refresh": "60"}, headers=headers)
    assert response.status_code == 200
    assert "every 60s" in response.content.decode()
    assert admin_client.get(reverse("volumes"), headers=headers).status_code == 286


@pytest.mark.parametrize("htmx", [False, True])
def test_deleting_a_volume_gone_elsewhere_says_so(daytona_engine, admin_client, htmx) -> None:
    url = reverse("volume_delete", args=[str(uuid.uuid4())])
    response = admin_client.post(url, headers=HX if htmx else {}, follow=not htmx)
    gone = "This volume no longer exists: it was deleted elsewhere."
    if htmx:
        assert response.status_code == 404
        assert response.content.decode() == gone
        assert "sandbar:toast" in response["HX-Trigger"]
    else:
        assert response.redirect_chain[-1][0] == reverse("volumes")
        assert gone in response.content.decode()


def count_in(html: str) -> str:
    assert len(elements(html, "span", id="volume-count")) == 1
    return text_of(html, "volume-count")


def test_the_count_in_the_page_head_follows_the_list_when_it_reloads(
    daytona_engine, make_volume, admin_client
) -> None:
    tag = uuid.uuid4().hex[:8]
    assert count_in(admin_client.get(reverse("volumes"), {"q": tag}).content.decode()) == "0"
    make_volume(name=f"counted-{tag}")
    # What the list's reload after a create gets: its rows and, out of band, the count.
    html = admin_client.get(reverse("volumes"), {"q": tag}, headers=HX).content.decode()
    (count,) = elements(html, "span", id="volume-count")
    assert count["hx-swap-oob"] == "true"
    assert text_of(html, "volume-count") == "1"
    assert f"counted-{tag}" in html


def test_a_deleted_volume_makes_the_list_reload(daytona_engine, make_volume, admin_client) -> None:
    volume = make_volume()
    response = admin_client.post(reverse("volume_delete", args=[volume["id"]]), headers=HX)
    assert response.status_code == 200
    assert "volumes-changed" in response["HX-Trigger"]


def test_the_kept_filter_inputs_show_what_each_url_asks_for(daytona_engine, member_client) -> None:
    for text in ("alpha", "beta", "alpha"):
        response = member_client.get(reverse("volumes"), {"q": text, "refresh": "30"})
        html = response.content.decode()
        assert elements(html, "input", id="id_q")[0].get("value") == text
        assert "selected" in elements(html, "option", value="30")[0]
    response = member_client.get(reverse("volumes"), {"refresh": "7"})
    assert response.status_code == 400
    refresh = elements(response.content.decode(), "select", name="refresh")[0]
    assert refresh.get("aria-invalid") == "true"
