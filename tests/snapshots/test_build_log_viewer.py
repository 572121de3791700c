"""The build log in the Logs tab's viewer: the page draws the log so far as numbered
lines, the viewer polls for batches of whole lines (the viewer's `lines` shape), and the
full log is a download. The API key stays on the server: the browser only talks to us."""

import asyncio
import re

import pytest
from django.test import AsyncClient
from django.urls import reverse

from dashboard.snapshots import views
from tests.snapshots.conftest import HX, engine_call, wait_for_snapshot


def _whole(engine, snapshot_id: str) -> str:
    return engine_call(engine, "GET", f"/snapshots/{snapshot_id}/build-logs").text


def _batch(client, snapshot_id: str, offset: int = 0, after: int = 0):
    url = reverse("snapshot_log", args=[snapshot_id])
    response = client.get(url, {"format": "lines", "offset": offset, "after": after})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return response.json()


def test_the_page_hands_the_log_to_the_logs_viewer(
    daytona_engine, make_snapshot, viewer_client
) -> None:
    snapshot = make_snapshot()
    whole = _whole(daytona_engine, snapshot["id"])
    html = viewer_client.get(reverse("snapshot", args=[snapshot["id"]])).content.decode()
    assert "js/logs.js" in html
    assert f'data-logs-poll="{reverse("snapshot_log", args=[snapshot["id"]])}"' in html
    assert f'data-logs-offset="{len(whole)}"' in html
    assert f'data-logs-count="{len(whole.splitlines())}"' in html
    assert 'data-logs-following="false"' in html
    assert html.count('<div class="log-line">') == len(whole.splitlines())
    download = reverse("snapshot_log_download", args=[snapshot["id"]])
    assert f'data-log-url="{download}"' in html
    # The viewer polls itself: no HTMX poll of the log, and no key in the page.
    assert "hx-get" not in html.split('id="log-follow"')[1].split(">")[0]
    assert "Bearer" not in html


def test_a_batch_is_the_log_as_numbered_lines(daytona_engine, make_snapshot, admin_client):
    snapshot = make_snapshot()
    whole = _whole(daytona_engine, snapshot["id"])
    batch = _batch(admin_client, snapshot["id"])
    assert batch["type"] == "lines" and batch["first"] == 0
    assert "".join(text for _, text in batch["lines"]) == whole
    assert all(stream == 1 for stream, _ in batch["lines"])
    assert batch["offset"] == len(whole)
    assert batch["final"] and not batch["more"] and not batch["reset"]
    assert batch["state"] == "active"
    # Resuming after the first line sends the rest, numbered from there.
    first = whole.splitlines(keepends=True)[0]
    rest = _batch(admin_client, snapshot["id"], offset=len(first), after=1)
    assert rest["first"] == 1
    assert first + "".join(text for _, text in rest["lines"]) == whole
    # At the end: nothing new, and the build is over.
    end = _batch(admin_client, snapshot["id"], offset=len(whole), after=len(batch["lines"]))
    assert end["lines"] == [] and end["final"]


def test_a_log_cut_to_its_tail_starts_the_viewer_afresh(
    daytona_engine, make_snapshot, admin_client
) -> None:
    snapshot = make_snapshot()
    whole = _whole(daytona_engine, snapshot["id"])
    batch = _batch(admin_client, snapshot["id"], offset=len(whole) + 50, after=99)
    assert batch["reset"] and batch["first"] == 0
    assert "".join(text for _, text in batch["lines"]) == whole


def test_big_logs_come_in_bounded_batches(
    daytona_engine, make_snapshot, admin_client, monkeypatch
) -> None:
    monkeypatch.setattr(views, "LINES_PER_BATCH", 2)
    snapshot = make_snapshot()
    whole = _whole(daytona_engine, snapshot["id"])
    assert len(whole.splitlines()) > 2
    seen, offset, count = "", 0, 0
    while True:
        batch = _batch(admin_client, snapshot["id"], offset=offset, after=count)
        assert len(batch["lines"]) <= 2 and batch["first"] == count
        seen += "".join(text for _, text in batch["lines"])
        offset, count = batch["offset"], count + len(batch["lines"])
        if not batch["more"]:
            break
    assert seen == whole and batch["final"]


def test_a_running_build_sends_only_whole_lines(daytona_engine, make_snapshot, admin_client):
    snapshot = make_snapshot(wait=False)
    batch = _batch(admin_client, snapshot["id"])
    if not batch["final"]:
        assert all(text.endswith("\n") for _, text in batch["lines"])
    wait_for_snapshot(daytona_engine, snapshot["id"], "active")
    rest = _batch(admin_client, snapshot["id"], offset=batch["offset"], after=len(batch["lines"]))
    whole = _whole(daytona_engine, snapshot["id"])
    lines = batch["lines"] + rest["lines"]
    assert "".join(text for _, text in lines) == whole
    assert rest["final"]


def test_the_head_refresh_carries_the_state_but_not_the_log(
    daytona_engine, make_snapshot, admin_client
) -> None:
    snapshot = make_snapshot()
    url = reverse("snapshot_log", args=[snapshot["id"]])
    response = admin_client.get(url, {"head": "1", "offset": 0}, headers=HX)
    assert response.status_code == 286
    html = response.content.decode()
    assert 'id="snapshot-head"' in html
    assert "#build-log" not in html and "is active" not in html
    assert "hx-get" not in html.split('id="log-follow"')[1].split(">")[0]


@pytest.mark.django_db(transaction=True)
async def test_the_full_log_downloads_as_a_stream(daytona_engine, make_snapshot, viewer_user):
    snapshot = await asyncio.to_thread(make_snapshot, name="dl-snap-1")
    whole = await asyncio.to_thread(_whole, daytona_engine, snapshot["id"])
    client = AsyncClient()
    await client.aforce_login(viewer_user)
    response = await client.get(reverse("snapshot_log_download", args=[snapshot["id"]]))
    assert response.status_code == 200 and response.streaming
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert body.decode() == whole
    assert response["Content-Type"].startswith("text/plain")
    assert re.search(
        r'attachment; filename="dl-snap-1-build\.log"', response["Content-Disposition"]
    )


@pytest.mark.parametrize("who", ["anonymous", "missing"])
def test_the_download_needs_a_person_and_a_snapshot(daytona_engine, client, viewer_client, who):
    if who == "anonymous":
        response = client.get(reverse("snapshot_log_download", args=["whatever"]))
        assert response.status_code == 302
    else:
        response = viewer_client.get(reverse("snapshot_log_download", args=["no-such"]))
        assert response.status_code == 404
