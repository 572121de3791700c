import pytest
from django.urls import reverse

from dashboard.snapshots.templatetags.snapshots import gib_size
from tests.html_attrs import elements, text_of
from tests.snapshots.conftest import HX


def test_it_lists_snapshots_with_their_state_for_a_viewer(
    daytona_engine, make_snapshot, viewer_client
) -> None:
    snapshot = make_snapshot()
    response = viewer_client.get(reverse("snapshots"))
    assert response.status_code == 200
    html = response.content.decode()
    assert snapshot["name"] in html
    assert "tone-running" in html  # active is green
    assert "New snapshot" not in html  # viewers only read
    assert f'hx-post="/snapshots/{snapshot["id"]}/delete/"' not in html


def test_an_admin_gets_actions_for_each_row(daytona_engine, make_snapshot, admin_client) -> None:
    snapshot = make_snapshot()
    html = admin_client.get(reverse("snapshots")).content.decode()
    assert "New snapshot" in html
    assert f"/snapshots/{snapshot['id']}/delete/" in html
    assert f"/snapshots/{snapshot['id']}/deactivate/" in html
    assert f"/snapshots/{snapshot['id']}/activate/" not in html


@pytest.mark.parametrize("htmx", [False, True])
def test_search_finds_by_part_of_the_name(
    daytona_engine, make_snapshot, member_client, htmx
) -> None:
    wanted = make_snapshot(name="findme-alpha-1")
    other = make_snapshot()
    response = member_client.get(reverse("snapshots"), {"q": "alpha"}, headers=HX if htmx else {})
    assert response.status_code == 200
    html = response.content.decode()
    assert wanted["name"] in html
    assert other["name"] not in html
    assert ("<html" in html) is not htmx
    assert 'id="results"' in html


def test_it_pages_and_sorts_by_name(daytona_engine, make_snapshot, admin_client) -> None:
    for letter in "abc":
        make_snapshot(name=f"pg-{letter}-snap")
    page1 = admin_client.get(
        reverse("snapshots"), {"q": "pg-", "sort": "name", "order": "asc", "limit": 10}
    )
    html = page1.content.decode()
    assert html.index("pg-a-snap") < html.index("pg-b-snap") < html.index("pg-c-snap")
    desc = admin_client.get(
        reverse("snapshots"), {"q": "pg-", "sort": "name", "order": "desc"}
    ).content.decode()
    assert desc.index("pg-c-snap") < desc.index("pg-a-snap")


def test_bad_filters_are_a_400_with_the_reason(daytona_engine, admin_client) -> None:
    response = admin_client.get(reverse("snapshots"), {"sort": "size", "page": "0"})
    assert response.status_code == 400
    assert b"Sort" in response.content or b"sort" in response.content


def test_a_poll_stops_with_286_when_nothing_is_changing(
    daytona_engine, make_snapshot, admin_client
) -> None:
    make_snapshot()
    response = admin_client.get(reverse("snapshots"), headers={**HX, "HX-Trigger": "results"})
    assert response.status_code == 286
    assert b'hx-trigger="every 2s"' not in response.content


def test_an_unreachable_daytona_shows_a_banner_not_a_500(admin_client, settings) -> None:
    settings.DAYTONA_API_URL = "http://127.0.0.1:9/api"
    settings.DAYTONA_API_KEY = "k"
    response = admin_client.get(reverse("snapshots"))
    assert response.status_code == 200
    assert b"Daytona is not answering" in response.content


def test_auto_refresh_keeps_the_list_polling_at_the_chosen_pace(
    daytona_engine, make_snapshot, admin_client
) -> None:
    make_snapshot()
    response = admin_client.get(
        reverse("snapshots"), {"refresh": "30"}, headers={**HX, "HX-Trigger": "results"}
    )
    assert response.status_code == 200  # not 286: the person asked for it
    assert "every 30s" in response.content.decode()
    assert admin_client.get(reverse("snapshots"), {"refresh": "7"}).status_code == 400


def test_a_small_snapshot_shows_its_size_not_0_gib(
    daytona_engine, make_snapshot, viewer_client
) -> None:
    # A root of one small file: under a MiB, which two decimals of GiB made "0 GiB".
    snapshot = make_snapshot()
    html = viewer_client.get(reverse("snapshots"), {"q": snapshot["name"]}).content.decode()
    row = html[html.index(f'id="snap-{snapshot["id"]}"') :]
    row = row[: row.index("</tr>")]
    assert "< 1 MiB" in row.replace("&lt;", "<")
    assert "0&thinsp;GiB" not in row and ">0 GiB<" not in row


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (None, "—"),
        (0.0, "< 1 MiB"),
        (0.0004, "< 1 MiB"),
        (0.003, "3.1 MiB"),
        (0.395, "404 MiB"),
        (1.0, "1 GiB"),
        (2.456, "2.46 GiB"),
    ],
)
def test_sizes_are_shown_in_the_unit_that_shows_them(size, shown) -> None:
    assert gib_size(size) == shown


def test_the_count_in_the_page_head_comes_with_each_reload(
    daytona_engine, make_snapshot, admin_client
) -> None:
    snapshot = make_snapshot()
    params = {"q": snapshot["name"]}
    html = admin_client.get(reverse("snapshots"), params, headers=HX).content.decode()
    (count,) = elements(html, "span", id="snapshot-count")
    assert count["hx-swap-oob"] == "true"
    assert text_of(html, "snapshot-count") == "1"
    page = admin_client.get(reverse("snapshots"), params).content.decode()
    assert len(elements(page, "span", id="snapshot-count")) == 1
