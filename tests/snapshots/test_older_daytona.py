"""What a Daytona without some endpoints looks like (a fake: the engine has them all)."""

import httpx
import pytest
from django.urls import reverse

from dashboard.daytona import client

SNAPSHOT = {"id": "s1", "name": "cloud-snap", "state": "active", "imageName": "python:3.12"}


@pytest.fixture
def older_daytona(settings):
    settings.DAYTONA_API_URL = "http://daytona.invalid/api"
    settings.DAYTONA_API_KEY = "k"
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/api/snapshots/s1":
            return httpx.Response(200, json=SNAPSHOT)
        if request.url.path == "/api/sandbox":
            return httpx.Response(200, json={"items": [], "nextCursor": None})
        return httpx.Response(404, json={"message": "Cannot GET " + request.url.path})

    client.use_transport(httpx.MockTransport(handler))
    yield seen
    client.use_transport(None)


def test_a_snapshot_without_a_build_log_says_so(older_daytona, viewer_client) -> None:
    response = viewer_client.get(reverse("snapshot", args=["s1"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "cloud-snap" in html and "python:3.12" in html
    assert "keeps no build log" in html
    assert "/api/snapshots/s1/build-logs-url" in older_daytona
    # Asked which sandboxes use it, by name.
    assert "/api/sandbox" in older_daytona
