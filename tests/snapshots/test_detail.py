import pytest
from django.urls import reverse

from tests.snapshots.conftest import HX, engine_call, wait_for_snapshot


def test_the_page_shows_facts_and_the_whole_build_log(
    daytona_engine, make_snapshot, viewer_client
) -> None:
    snapshot = make_snapshot()
    response = viewer_client.get(reverse("snapshot", args=[snapshot["id"]]))
    assert response.status_code == 200
    html = response.content.decode()
    assert snapshot["name"] in html
    assert "dir:" in html
    assert "building snapshot" in html  # the engine's first log line
    assert "is active" in html  # and its last
    # A finished build is not followed.
    assert 'hx-trigger="load delay:1s"' not in html
    # Viewers see no buttons that act.
    assert "hx-post" not in html


def test_a_missing_snapshot_is_a_404(daytona_engine, admin_client) -> None:
    response = admin_client.get(reverse("snapshot", args=["no-such-snapshot"]))
    assert response.status_code == 404


def test_a_building_snapshot_is_followed_until_its_state_is_final(
    daytona_engine, make_snapshot, admin_client
) -> None:
    snapshot = make_snapshot(wait=False)
    page = admin_client.get(reverse("snapshot", args=[snapshot["id"]]))
    assert page.status_code == 200
    wait_for_snapshot(daytona_engine, snapshot["id"], "active")
    url = reverse("snapshot_log", args=[snapshot["id"]])
    response = admin_client.get(url, {"offset": 0}, headers=HX)
    # The build ended: the poll stops with 286 and says how it ended.
    assert response.status_code == 286
    html = response.content.decode()
    assert 'hx-swap-oob="beforeend:#build-log"' in html
    assert "is active" in html
    assert 'id="snapshot-head"' in html and 'hx-swap-oob="true"' in html
    assert "load delay:1s" not in html
    assert "sandbar:toast" in response["HX-Trigger"]


def test_the_log_poll_sends_only_what_is_new(daytona_engine, make_snapshot, admin_client) -> None:
    snapshot = make_snapshot()
    url = reverse("snapshot_log", args=[snapshot["id"]])
    whole = engine_call(daytona_engine, "GET", f"/snapshots/{snapshot['id']}/build-logs").text
    response = admin_client.get(url, {"offset": len(whole)}, headers=HX)
    assert response.status_code == 286
    assert b"beforeend:#build-log" not in response.content
    # An offset past the end (the log was cut to its tail) shows the log afresh.
    response = admin_client.get(url, {"offset": len(whole) + 100}, headers=HX)
    assert b'<pre class="build-log" id="build-log"' in response.content


@pytest.mark.parametrize("offset", ["-1", "abc", "1" * 20])
def test_a_bad_offset_is_a_400(daytona_engine, make_snapshot, admin_client, offset) -> None:
    snapshot = make_snapshot()
    url = reverse("snapshot_log", args=[snapshot["id"]])
    assert admin_client.get(url, {"offset": offset}, headers=HX).status_code == 400


def test_the_log_of_a_deleted_snapshot_stops_the_poll(daytona_engine, admin_client) -> None:
    url = reverse("snapshot_log", args=["gone-snapshot"])
    response = admin_client.get(url, headers=HX)
    assert response.status_code == 286
    assert "sandbar:toast" in response["HX-Trigger"]


def test_a_failed_build_shows_its_reason(daytona_engine, make_snapshot, tmp_path, admin_client):
    bad = tmp_path / "broken.tar"
    bad.write_bytes(b"this is not a tarball")
    snapshot = make_snapshot(image_name=f"tar:{bad}")
    assert snapshot["state"] == "build_failed"
    html = admin_client.get(reverse("snapshot", args=[snapshot["id"]])).content.decode()
    assert "tone-failed" in html
    assert "build failed" in html
    assert "tar exited with status" in html
