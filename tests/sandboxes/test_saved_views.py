"""Saved views: a person's named filters for the sandboxes list, applied again by name."""

import html
import re

import pytest
from django.urls import reverse

from dashboard.sandboxes.models import VIEWS_PER_PERSON, SavedView
from tests.conftest import client_for
from tests.served_client import ServedClient

LIST = "/sandboxes/"
SAVE = "/sandboxes/views/"


def _page(client, url: str = LIST, **params) -> str:
    response = client.get(url, params)
    assert response.status_code in (200, 400), response.status_code
    return html.unescape(response.content.decode())


def test_a_viewer_saves_the_current_filters_and_finds_them_as_a_quick_link(
    daytona_engine, viewer_client, viewer_user
) -> None:
    # Paging is where the reader was, not part of the view: it is left out.
    query = "states=stopped&labels=team%3Dweb&sort=name&cursor=abc&owner="
    response = viewer_client.post(SAVE, {"name": "Stopped web", "query": query})
    assert response.status_code == 302
    saved = SavedView.objects.get(owner=viewer_user)
    assert saved.name == "Stopped web"
    assert saved.query == "states=stopped&labels=team%3Dweb&sort=name"
    assert response["Location"] == f"{LIST}?{saved.query}"

    page = _page(viewer_client, f"{LIST}?{saved.query}")
    assert "Saved the view “Stopped web”." in page
    href = reverse("sandbox_view", args=[saved.pk])
    link = re.search(rf'<a href="{href}"([^>]*)>Stopped web</a>', page)
    assert link, "the saved view is not offered as a link"
    assert "aria-current" in link.group(1)
    # Elsewhere on the list it is a link, not the current view.
    other = _page(viewer_client, LIST, states="started")
    assert ">Stopped web</a>" in other
    assert 'aria-current="true">Stopped web' not in other


def test_applying_a_view_opens_the_list_with_its_filters(viewer_client, viewer_user) -> None:
    view = SavedView.objects.create(owner=viewer_user, name="Mine", query="owner=vic&sort=name")
    response = viewer_client.get(reverse("sandbox_view", args=[view.pk]))
    assert response.status_code == 302
    assert response["Location"] == f"{LIST}?owner=vic&sort=name"


def test_a_view_whose_filters_no_longer_hold_says_why_instead_of_failing(
    daytona_engine, viewer_client, viewer_user
) -> None:
    # As if saved under older rules: the list's form refuses it now.
    view = SavedView.objects.create(
        owner=viewer_user, name="Old one", query="states=melting&min_cpu=4&max_cpu=2"
    )
    response = viewer_client.get(reverse("sandbox_view", args=[view.pk]), follow=True)
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert "The saved view “Old one” no longer applies:" in page
    assert "Select a valid choice. melting is not one of the available choices." in page
    assert "CPU to: Must not be less than the lower bound." in page
    assert response.redirect_chain[-1][0] == LIST


@pytest.mark.parametrize(
    ("name", "query", "said"),
    [
        ("", "states=started", "This field is required."),
        ("x" * 41, "states=started", "at most 40 characters"),
        ("bad\x07bell", "states=started", "cannot hold control characters"),
        ("Empty", "cursor=abc&owner=", "Nothing to save yet"),
        ("Wrong", "min_cpu=many", "These filters are not valid: CPU from: Enter a whole number."),
        ("Long", "q=" + "a" * 3000, "at most 2000 characters"),
    ],
)
def test_a_bad_name_or_bad_filters_are_refused_with_a_clear_message(
    daytona_engine, member_client, member_user, name, query, said
) -> None:
    response = member_client.post(SAVE, {"name": name, "query": query}, follow=True)
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert "The view was not saved." in page
    assert said in page
    assert not SavedView.objects.filter(owner=member_user).exists()


def test_saving_under_a_name_already_used_updates_that_view(member_client, member_user) -> None:
    member_client.post(SAVE, {"name": "Mine", "query": "owner=mel"})
    member_client.post(SAVE, {"name": "Mine", "query": "owner=mel&states=started"})
    assert list(SavedView.objects.filter(owner=member_user).values_list("query", flat=True)) == [
        "states=started&owner=mel"
    ]


def test_a_person_keeps_at_most_twenty_views(member_client, member_user) -> None:
    for n in range(VIEWS_PER_PERSON):
        SavedView.objects.create(owner=member_user, name=f"v{n}", query=f"q=n{n}")
    response = member_client.post(SAVE, {"name": "one more", "query": "q=more"}, follow=True)
    assert "the most kept: delete one first" in html.unescape(response.content.decode())
    assert SavedView.objects.filter(owner=member_user).count() == VIEWS_PER_PERSON


def test_views_are_each_persons_own(
    daytona_engine, member_client, viewer_user, member_user
) -> None:
    theirs = SavedView.objects.create(owner=viewer_user, name="Vic's view", query="q=vic")
    assert "Vic's view" not in _page(member_client)
    assert member_client.get(reverse("sandbox_view", args=[theirs.pk])).status_code == 404
    deleted = member_client.post(reverse("sandbox_view_delete", args=[theirs.pk]))
    assert deleted.status_code == 404
    assert SavedView.objects.filter(pk=theirs.pk).exists()


def test_deleting_a_view_removes_its_link_and_returns_to_the_same_filters(
    daytona_engine, viewer_client, viewer_user
) -> None:
    view = SavedView.objects.create(owner=viewer_user, name="Gone soon", query="states=stopped")
    response = viewer_client.post(
        reverse("sandbox_view_delete", args=[view.pk]), {"query": "states=started"}
    )
    assert response.status_code == 302
    assert response["Location"] == f"{LIST}?states=started"
    assert not SavedView.objects.filter(pk=view.pk).exists()
    page = _page(viewer_client, response["Location"])
    assert "Deleted the view “Gone soon”." in page
    assert ">Gone soon</a>" not in page


def test_saving_and_deleting_need_the_csrf_token(viewer_user) -> None:
    view = SavedView.objects.create(owner=viewer_user, name="Kept", query="q=kept")
    client = ServedClient(enforce_csrf_checks=True)
    client.force_login(viewer_user)
    assert client.post(SAVE, {"name": "Forged", "query": "q=x"}).status_code == 403
    assert client.post(reverse("sandbox_view_delete", args=[view.pk])).status_code == 403
    assert list(SavedView.objects.values_list("name", flat=True)) == ["Kept"]


def test_the_list_offers_to_save_only_when_something_is_chosen(daytona_engine, viewer_user) -> None:
    client = client_for(viewer_user)
    assert 'action="/sandboxes/views/"' not in _page(client)
    page = _page(client, LIST, states="started", cursor="abc")
    assert 'action="/sandboxes/views/"' in page
    assert '<input type="hidden" name="query" value="states=started">' in page


def test_filters_changed_in_place_redraw_the_views_with_the_new_query(
    daytona_engine, viewer_client, viewer_user
) -> None:
    # The filter form swaps only the results (htmx): the save form must carry the new query.
    SavedView.objects.create(owner=viewer_user, name="Zed", query="states=started")
    response = viewer_client.get(LIST, {"states": "started"}, headers={"HX-Request": "true"})
    results = response.content.decode()
    assert results.lstrip().startswith('<div id="results"')
    assert 'aria-current="true">Zed</a>' in results
    assert '<input type="hidden" name="query" value="states=started">' in results
