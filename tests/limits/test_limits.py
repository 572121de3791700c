import uuid

import httpx
import pytest
from django.urls import reverse

from dashboard.accounts.access import OWNER_LABEL
from dashboard.accounts.models import ConnectionQuota, Role
from dashboard.daytona import client
from dashboard.limits.views import Meter
from tests.conftest import client_for, make_user

HX = {"HX-Request": "true"}


def engine_call(engine, method: str, path: str, **kwargs):
    with engine.client() as http:
        return http.request(method, path, **kwargs)


@pytest.fixture
def owned_sandbox(daytona_engine):
    body = {"name": f"lim-{uuid.uuid4().hex[:8]}", "labels": {OWNER_LABEL: "mel"}, "cpu": 1}
    made = engine_call(daytona_engine, "POST", "/sandbox", json=body)
    assert made.status_code == 200, made.text
    yield made.json()
    engine_call(daytona_engine, "DELETE", f"/sandbox/{made.json()['id']}")


@pytest.mark.parametrize("htmx", [False, True])
def test_everyone_sees_the_organizations_usage_against_its_limits(
    daytona_engine, viewer_client, htmx
) -> None:
    response = viewer_client.get(reverse("limits"), headers=HX if htmx else {})
    assert response.status_code == 200
    html = response.content.decode()
    usage = engine_call(daytona_engine, "GET", "/organizations").json()[0]["id"]
    totals = engine_call(daytona_engine, "GET", f"/organizations/{usage}/usage").json()
    region = totals["regionUsage"][0]
    for label in ("Compute", "Memory", "Storage", "Snapshots", "Volumes"):
        assert label in html
    assert f'max="{region["totalCpuQuota"]}"' in html
    assert "<meter" in html
    assert 'hx-trigger="every 10s"' in html
    assert ("<html" in html) is not htmx
    # A viewer has no personal quota to show.
    assert "Your quota" not in html and "People" not in html


def test_a_member_sees_their_own_usage_against_their_quota(
    daytona_engine, owned_sandbox, member_user
) -> None:
    ConnectionQuota.objects.create(user=member_user, quota_cpu=4, quota_sandboxes=2)
    html = client_for(member_user).get(reverse("limits")).content.decode()
    assert "Your quota" in html
    assert 'aria-label="Sandboxes: 1 of 2"' in html
    assert 'aria-label="Running vCPU: 1 of 4 vCPU"' in html
    assert "People" not in html


def test_an_admin_sees_a_table_of_peoples_usage_and_quotas(
    daytona_engine, owned_sandbox, admin_client, member_user
) -> None:
    ConnectionQuota.objects.create(user=member_user, quota_sandboxes=1)
    make_user("quiet", Role.VIEWER)
    make_user("meg", Role.MEMBER)
    html = admin_client.get(reverse("limits")).content.decode()
    assert "People" in html
    assert "mel" in html and "meg" in html
    assert "quiet" not in html  # viewers create nothing: no quota to show
    assert 'aria-label="Sandboxes: 1 of 1"' in html
    assert "at the limit" in html


def test_an_unreachable_daytona_shows_a_banner_not_a_500(
    admin_client, member_user, settings
) -> None:
    settings.DAYTONA_API_URL = "http://127.0.0.1:9/api"
    settings.DAYTONA_API_KEY = "k"
    response = admin_client.get(reverse("limits"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "usage cannot be read" in html
    assert "personal usage is unknown" in html


def limits_page_through(transport, admin_client, settings) -> str:
    """The limits page as an admin sees it when Daytona answers through `transport`."""
    settings.DAYTONA_API_URL = "http://daytona.invalid/api"
    settings.DAYTONA_API_KEY = "k"
    client.use_transport(transport)
    try:
        return admin_client.get(reverse("limits")).content.decode()
    finally:
        client.use_transport(None)


def test_an_organization_without_regions_or_limits_still_renders(admin_client, settings):
    seen: list[str] = []
    transport = fake_daytona(httpx.Response(404), usage={"currentVolumeUsage": 3}, seen=seen)
    html = limits_page_through(transport, admin_client, settings)
    assert "/api/organizations/org-1/usage" in seen
    assert "reported no regions" in html
    assert "no limit" in html


@pytest.mark.parametrize(
    ("used", "limit", "level", "percent"),
    [
        (1, 4, "ok", 25),
        (3, 4, "warn", 75),
        (4, 4, "full", 100),
        (5, None, "ok", None),
        (1, 0, "full", 100),
    ],
)
def test_a_meter_says_how_full_it_is(used, limit, level, percent) -> None:
    meter = Meter("x", used, limit)
    assert (meter.level, meter.percent) == (level, percent)


def test_an_admin_sees_the_engines_host_checks(daytona_engine, admin_client) -> None:
    html = admin_client.get(reverse("limits")).content.decode()
    assert "Host prerequisites" in html
    assert "Networked sandboxes" in html
    # Every feature by a name people read, not the engine's key for it.
    features = engine_call(daytona_engine, "GET", "/sandbar/engine").json()["features"]
    assert "images" in features
    assert "Snapshots from container images" in html
    assert "</span> images</li>" not in html
    checks = engine_call(daytona_engine, "GET", "/sandbar/engine").json()["checks"]
    assert f"All {len(checks)} checks pass" in html
    assert "TUN device" in html


def test_only_admins_see_the_engines_host_checks(daytona_engine, member_user) -> None:
    html = client_for(member_user).get(reverse("limits")).content.decode()
    assert "Host prerequisites" not in html


def fake_daytona(engine_answer: httpx.Response, usage=None, seen=None):
    """A Daytona with one organization, no regions, no sandboxes; ``engine_answer`` for
    the embedded engine's host checks."""

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request.url.path)
        if request.url.path == "/api/organizations":
            return httpx.Response(200, json=[{"id": "org-1", "name": "Org"}])
        if request.url.path == "/api/organizations/org-1/usage":
            return httpx.Response(200, json={"regionUsage": [], **(usage or {})})
        if request.url.path == "/api/sandbar/engine":
            return engine_answer
        return httpx.Response(200, json={"items": [], "nextCursor": None})

    return httpx.MockTransport(handler)


def test_a_missing_prerequisite_is_shown_with_its_fix(admin_client, settings) -> None:
    check = {
        "name": "TUN device",
        "ok": False,
        "detail": "/dev/net/tun is mode 0600: unprivileged sandboxes cannot open it",
        "fix": "chmod 0666 /dev/net/tun",
        "feature": "network",
    }
    answer = httpx.Response(
        200, json={"version": "1", "checks": [check], "features": {"network": False}}
    )
    html = limits_page_through(fake_daytona(answer), admin_client, settings)
    assert "1 prerequisite missing" in html
    assert "<code>chmod 0666 /dev/net/tun</code>" in html
    assert "outcome-failure" in html


def test_daytona_cloud_has_no_engine_section(admin_client, settings) -> None:
    not_found = httpx.Response(404, json={"message": "Not Found"})
    html = limits_page_through(fake_daytona(not_found), admin_client, settings)
    assert "Host prerequisites" not in html


def test_with_no_members_the_quota_note_is_said_once(daytona_engine, admin_client) -> None:
    html = admin_client.get(reverse("limits")).content.decode()
    assert "No members yet" in html
    assert html.count("viewers create nothing") == 1
