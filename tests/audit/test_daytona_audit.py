"""Daytona's own audit log, on its tab beside Sandbar's trail."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.urls import reverse

from dashboard.daytona import client

HX = {"HX-Request": "true"}


def engine_call(engine, method: str, path: str, **kwargs):
    with engine.client() as http:
        return http.request(method, path, **kwargs)


@pytest.fixture
def a_logged_call(daytona_engine):
    """A change made with the API key, which Daytona (the engine) records."""
    name = f"audited-{uuid.uuid4().hex[:8]}"
    made = engine_call(daytona_engine, "POST", "/volumes", json={"name": name})
    assert made.status_code == 200
    yield made.json()
    engine_call(daytona_engine, "DELETE", f"/volumes/{made.json()['id']}")


@pytest.fixture
def auditor_client(db):
    from dashboard.accounts.models import Role
    from tests.conftest import client_for, make_user

    return client_for(make_user("aud", Role.AUDITOR))


@pytest.mark.parametrize("who", ["auditor_client", "admin_client"])
@pytest.mark.parametrize("htmx", [False, True])
def test_admins_and_auditors_read_daytonas_log(a_logged_call, request, who, htmx) -> None:
    response = request.getfixturevalue(who).get(
        reverse("audit_daytona"), headers=HX if htmx else {}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="daytona-results"' in html
    assert a_logged_call["id"][:15] in html  # the target of the call
    assert "API key" in html  # who: the key's prefix and suffix
    assert ("<html" in html) is not htmx
    if not htmx:
        assert 'aria-current="page">' in html and "Sandbar</a>" in html


@pytest.mark.parametrize("who", ["viewer_client", "member_client"])
def test_members_and_viewers_may_not_read_daytonas_log_of_everyones_calls(
    daytona_engine, request, who
) -> None:
    # Every call made with the organization's key, anyone's: not one person's own trail.
    response = request.getfixturevalue(who).get(reverse("audit_daytona"))
    assert response.status_code == 403
    html = request.getfixturevalue(who).get(reverse("audit")).content.decode()
    assert reverse("audit_daytona") not in html  # and the tab is not offered


@pytest.mark.parametrize(("who", "shown"), [("auditor_client", False), ("admin_client", True)])
def test_the_api_keys_ends_are_shown_to_admins_only(
    a_logged_call, daytona_engine, request, who, shown
) -> None:
    key = daytona_engine.api_key
    html = request.getfixturevalue(who).get(reverse("audit_daytona")).content.decode()
    assert "API key" in html
    assert (f"API key {key[:3]}…{key[-3:]}" in html) is shown


def test_sandbars_trail_links_to_daytonas_tab(admin_client) -> None:
    html = admin_client.get(reverse("audit")).content.decode()
    assert reverse("audit_daytona") in html
    assert 'id="results"' in html  # Sandbar's own trail still renders


def test_a_range_in_the_future_is_empty(a_logged_call, admin_client) -> None:
    since = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = admin_client.get(reverse("audit_daytona"), {"since": since}, headers=HX)
    assert response.status_code == 200
    assert "Daytona recorded nothing in this range" in response.content.decode()


def test_it_pages_through_the_log(daytona_engine, a_logged_call, admin_client) -> None:
    for _ in range(3):
        engine_call(daytona_engine, "POST", "/volumes", json={"name": "-"})  # refused, recorded
    first = admin_client.get(reverse("audit_daytona"), {"limit": 25}).content.decode()
    assert "400 failed" in first  # a refused call shows its status and Daytona's reason
    org = engine_call(daytona_engine, "GET", "/organizations").json()[0]["id"]
    total = engine_call(daytona_engine, "GET", f"/audit/organizations/{org}").json()["total"]
    if total > 25:
        assert "page=2" in first
        second = admin_client.get(reverse("audit_daytona"), {"limit": 25, "page": 2})
        assert second.status_code == 200 and "Page 2 of" in second.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        {"since": "2026-02-01T00:00", "until": "2026-01-01T00:00"},
        {"since": "yesterday"},
        {"limit": "7"},
        {"page": "0"},
    ],
)
def test_bad_filters_are_a_400_with_the_reason(daytona_engine, admin_client, query) -> None:
    response = admin_client.get(reverse("audit_daytona"), query, headers=HX)
    assert response.status_code == 400
    assert 'class="alert alert-error"' in response.content.decode()


def test_a_key_without_the_permission_is_said_plainly(admin_client, settings) -> None:
    settings.DAYTONA_API_URL = "http://daytona.invalid/api"
    settings.DAYTONA_API_KEY = "k"
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/organizations":
            return httpx.Response(200, json=[{"id": "org-9", "name": "Org"}])
        body = {"statusCode": 403, "message": "Missing permission read:audit_logs"}
        return httpx.Response(403, content=json.dumps(body))

    client.use_transport(httpx.MockTransport(handler))
    try:
        response = admin_client.get(reverse("audit_daytona"), {"limit": 50, "page": 3})
    finally:
        client.use_transport(None)
    assert response.status_code == 200
    assert "may not read Daytona" in response.content.decode()
    assert "read:audit_logs" in response.content.decode()
    sent = seen[-1]
    assert sent.url.path == "/api/audit/organizations/org-9"
    assert (sent.url.params["page"], sent.url.params["limit"]) == ("3", "50")


def test_an_unreachable_daytona_leaves_the_page_working(admin_client, settings) -> None:
    settings.DAYTONA_API_URL = "http://127.0.0.1:9/api"
    settings.DAYTONA_API_KEY = "k"
    response = admin_client.get(reverse("audit_daytona"))
    assert response.status_code == 200
    assert "cannot be read" in response.content.decode()


def test_anonymous_people_are_sent_to_sign_in(db, client) -> None:
    response = client.get(reverse("audit_daytona"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_auto_refresh_reloads_the_results_at_the_chosen_pace(daytona_engine, admin_client):
    response = admin_client.get(reverse("audit_daytona"), {"refresh": "30"}, headers=HX)
    assert response.status_code == 200
    assert 'hx-trigger="every 30s"' in response.content.decode()
    plain = admin_client.get(reverse("audit_daytona")).content.decode()
    assert 'hx-trigger="every' not in plain
    assert admin_client.get(reverse("audit_daytona"), {"refresh": "7"}).status_code == 400


@pytest.mark.parametrize("who", ["auditor_client", "admin_client"])
def test_where_calls_came_from_is_shown_to_admins_and_auditors(
    a_logged_call, daytona_engine, request, who
) -> None:
    html = request.getfixturevalue(who).get(reverse("audit_daytona")).content.decode()
    # The engine records the caller's address: the test's own loopback one.
    assert "127.0.0.1" in html
