"""What people see when Daytona is slow, failing or talking nonsense (a fake transport:
the engine cannot be made to do these), and what was asked of it."""

import httpx
import pytest

from dashboard.daytona import client
from tests.sandboxes.conftest import HX


@pytest.fixture
def daytona_answers(settings):
    settings.DAYTONA_API_URL = "http://daytona.invalid/api"
    settings.DAYTONA_API_KEY = "the-secret-key"
    settings.DAYTONA_TIMEOUT = 2
    seen: list[httpx.Request] = []

    def install(handler):
        def recording(request: httpx.Request) -> httpx.Response:
            if dict(request.url.params) != {"limit": "200"}:  # a live poll from elsewhere
                seen.append(request)
            return handler(request)

        client.use_transport(httpx.MockTransport(recording))
        return seen

    yield install
    client.use_transport(None)


def too_slow(request):
    raise httpx.ReadTimeout("slow", request=request)


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_a_slow_daytona_gives_the_list_a_banner_not_an_error(
    daytona_answers, member_client, htmx
) -> None:
    seen = daytona_answers(too_slow)
    response = member_client.get(
        "/sandboxes/", {"q": "web", "states": "started"}, **({"headers": HX} if htmx else {})
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Daytona is not answering." in html
    assert "did not answer within 2 seconds" in html
    assert "the-secret-key" not in html
    (request,) = seen
    assert request.url.path == "/api/sandbox"
    assert request.url.params["name"] == "web"
    assert request.url.params.get_list("states") == ["started"]
    assert request.url.params["limit"] == "25"
    assert request.headers["Authorization"] == "Bearer the-secret-key"


def test_a_failing_daytona_gives_the_sandbox_page_a_banner(daytona_answers, member_client):
    seen = daytona_answers(lambda r: httpx.Response(500, json={"message": "database down"}))
    response = member_client.get("/sandboxes/abc/")
    assert response.status_code == 503
    assert "database down" in response.content.decode()
    assert {r.url.path for r in seen} == {"/api/sandbox/abc"}
    assert len(seen) == 1  # a 500 is not retried (only 502/503/504 are)


def test_nonsense_from_daytona_on_an_action_is_reported_and_sent_once(
    daytona_answers, admin_client
) -> None:
    sandbox = {"id": "abc", "name": "one", "state": "started", "labels": {}}

    def answer(request):
        if request.method == "GET":
            return httpx.Response(200, json=sandbox)
        return httpx.Response(200, text="<html>a proxy's login page</html>")

    seen = daytona_answers(answer)
    response = admin_client.post("/sandboxes/abc/stop/", headers=HX)
    assert response.status_code == 503
    assert "not JSON" in response["HX-Trigger"]
    posts = [r for r in seen if r.method == "POST"]
    assert [r.url.path for r in posts] == ["/api/sandbox/abc/stop"]
