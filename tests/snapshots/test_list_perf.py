"""What loading the snapshots list costs: Daytona calls, queries and rows drawn.

A 100-row page once drew every row through the template engine on every load (about
2 ms of CPU a row, 17 times the rest of the page); these tests hold the page to one
Daytona call and a fixed number of queries whatever its length, and to drawing again
only the rows whose snapshot changed.
"""

import httpx
import pytest
from django.db import connection
from django.test.signals import template_rendered
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dashboard.core import kept, widgets
from dashboard.snapshots import views
from tests.html_attrs import elements
from tests.snapshots.conftest import engine_call, wait_for_snapshot

ROW = "snapshots/_row.html"


@pytest.fixture
def daytona_requests(monkeypatch) -> list[str]:
    """Every HTTP request the dashboard sends (to the engine), by method and path."""
    sent: list[str] = []
    real_send = httpx.AsyncClient.send

    async def counting_send(self, request, *args, **kwargs):
        sent.append(f"{request.method} {request.url.path}")
        return await real_send(self, request, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "send", counting_send)
    return sent


@pytest.fixture
def rows_drawn() -> list[str]:
    """Which row templates were rendered, one entry per render."""
    drawn: list[str] = []

    def seen(sender, template, context, **kwargs) -> None:
        if template.name == ROW:
            drawn.append(context.get("row").snapshot.id)

    template_rendered.connect(seen)
    yield drawn
    template_rendered.disconnect(seen)


@pytest.fixture(autouse=True)
def _no_kept_rows():
    views.ROWS.clear()
    yield
    views.ROWS.clear()


def _load(client, **params) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("snapshots"), {"limit": "100", **params})
    assert response.status_code == 200
    return response.content.decode(), len(queries)


def test_the_list_makes_one_daytona_call_and_the_same_queries_for_more_rows(
    daytona_engine, make_snapshot, admin_client, daytona_requests
) -> None:
    prefix = "perf-count-"
    make_snapshot(name=f"{prefix}0")
    daytona_requests.clear()
    html, few_queries = _load(admin_client, q=prefix)
    assert html.count('id="snap-') == 1
    assert daytona_requests == ["GET /api/snapshots"]

    for index in range(1, 6):
        make_snapshot(name=f"{prefix}{index}")
    daytona_requests.clear()
    html, more_queries = _load(admin_client, q=prefix)
    assert html.count('id="snap-') == 6
    assert daytona_requests == ["GET /api/snapshots"]
    assert more_queries == few_queries


def test_a_reload_draws_only_the_rows_whose_snapshot_changed(
    daytona_engine, make_snapshot, admin_client, rows_drawn
) -> None:
    prefix = "perf-kept-"
    snapshots = [make_snapshot(name=f"{prefix}{index}") for index in range(3)]
    _load(admin_client, q=prefix)
    assert sorted(rows_drawn) == sorted(s["id"] for s in snapshots)

    rows_drawn.clear()
    again, _ = _load(admin_client, q=prefix)
    assert rows_drawn == []
    assert again.count('id="snap-') == 3

    changed = snapshots[1]
    engine_call(daytona_engine, "POST", f"/snapshots/{changed['id']}/deactivate")
    wait_for_snapshot(daytona_engine, changed["id"], "inactive")
    rows_drawn.clear()
    after, _ = _load(admin_client, q=prefix)
    assert rows_drawn == [changed["id"]]
    row = after[after.index(f'id="snap-{changed["id"]}"') :].split("</tr>", 1)[0]
    assert 'data-state="inactive"' in row
    assert f"/snapshots/{changed['id']}/activate/" in row


def test_a_kept_row_says_how_long_ago_as_of_this_load(
    daytona_engine, make_snapshot, admin_client, rows_drawn, monkeypatch
) -> None:
    """The words of a row's times change with the clock, not the row: they are filled
    into the kept row on every load."""
    snapshot = make_snapshot(name="perf-clock-0")
    _load(admin_client, q="perf-clock-")
    assert rows_drawn == [snapshot["id"]]
    monkeypatch.setattr(kept, "naturaltime", lambda moment: "<later> & on")
    rows_drawn.clear()
    html, _ = _load(admin_client, q="perf-clock-")
    assert rows_drawn == []
    assert "&lt;later&gt; &amp; on</time>" in html
    assert "<!--ago:" not in html


def test_a_kept_row_is_not_shown_to_someone_who_may_not_act(
    daytona_engine, make_snapshot, admin_client, viewer_client
) -> None:
    snapshot = make_snapshot(name="perf-who-0")
    admin_html, _ = _load(admin_client, q="perf-who-")
    assert f"/snapshots/{snapshot['id']}/delete/" in admin_html
    viewer_html, _ = _load(viewer_client, q="perf-who-")
    assert snapshot["name"] in viewer_html
    assert f'hx-post="/snapshots/{snapshot["id"]}/delete/"' not in viewer_html


def test_the_kept_filter_inputs_show_what_this_url_asks_for(daytona_engine, admin_client) -> None:
    widgets._DRAWN.clear()
    for text in ("alpha", "beta", "alpha"):
        html, _ = _load(admin_client, q=text, sort="name")
        field = elements(html, "input", id="id_q")[0]
        assert field.get("value") == text
        assert "selected" in elements(html, "option", value="name")[0]
    response = admin_client.get(reverse("snapshots"), {"limit": "7"})
    assert response.status_code == 400
    limit = elements(response.content.decode(), "select", name="limit")[0]
    assert limit.get("aria-invalid") == "true"
