"""/readyz and the Daytona connections: each one's reachability by name, a 503 only
when none answers, asked concurrently within a short limit and not on every request.

The Default is the embedded engine; the others are the same engine under its own
name, a loopback port nobody listens on, ports that never answer, or a recording
server (to count what /readyz asks of Daytona).
"""

import time

import pytest

from dashboard.connections.models import Connection
from dashboard.core import health
from tests.connections.servers import closed_port, http_server, silent_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_kept_answers(monkeypatch) -> None:
    monkeypatch.setattr(health, "_kept", None)


def _connection(name: str, url: str, key: str = "k") -> Connection:
    row = Connection(name=name, api_url=url)
    row.set_secret(key)
    row.save()
    return row


def _dead_url() -> str:
    return f"http://127.0.0.1:{closed_port()}/api"


def test_each_connection_is_reported_and_one_away_leaves_the_worker_ready(
    admin_client, daytona_engine
) -> None:
    _connection("again", daytona_engine.api_url, daytona_engine.api_key)
    _connection("away", _dead_url())
    response = admin_client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert body["checks"]["daytona"] == {"ok": True}
    assert body["connections"] == [
        {"name": "Default", "ok": True, "reason": ""},
        {"name": "again", "ok": True, "reason": ""},
        {"name": "away", "ok": False, "reason": "Daytona cannot be reached (ConnectError)"},
    ]
    assert "127.0.0.1" not in response.content.decode()


def test_one_connection_answering_is_enough_even_if_the_default_is_away(
    admin_client, daytona_engine, settings
) -> None:
    _connection("again", daytona_engine.api_url, daytona_engine.api_key)
    settings.DAYTONA_API_URL = _dead_url()
    response = admin_client.get("/readyz")
    assert response.status_code == 200
    names = {answer["name"]: answer["ok"] for answer in response.json()["connections"]}
    assert names == {"Default": False, "again": True}


def test_no_connection_answering_makes_the_worker_unready(client, settings) -> None:
    _connection("away", _dead_url())
    settings.DAYTONA_API_URL = _dead_url()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["daytona"] == {
        "ok": False,
        "reason": "no Daytona connection can be reached",
    }
    assert [answer["ok"] for answer in body["connections"]] == [False, False]


def test_a_connection_whose_secret_cannot_be_opened_is_not_reachable(
    client, daytona_engine, settings
) -> None:
    _connection("sealed", daytona_engine.api_url)
    settings.SECRET_KEY = "another-secret-key-0123456789-abcdefghijklmnopqrstuv"
    # A new secret key signs everyone out too: asked signed out, by its place.
    answers = client.get("/readyz").json()["connections"]
    assert answers[1] == {
        "ok": False,
        "reason": "its stored secret cannot be opened",
    }


def test_connections_that_never_answer_are_asked_at_once_within_a_short_limit(
    admin_client, daytona_engine, monkeypatch
) -> None:
    monkeypatch.setattr(health, "CONNECTION_SECONDS", 1.0)
    with silent_port() as first, silent_port() as second:
        _connection("silent-1", f"http://127.0.0.1:{first}/api")
        _connection("silent-2", f"http://127.0.0.1:{second}/api")
        started = time.monotonic()
        response = admin_client.get("/readyz")
        took = time.monotonic() - started
    assert response.status_code == 200  # the Default answers
    slow = [answer for answer in response.json()["connections"] if not answer["ok"]]
    assert [answer["name"] for answer in slow] == ["silent-1", "silent-2"]
    assert all("in time" in a["reason"] or "within 1 s" in a["reason"] for a in slow), slow
    # One after the other would take 2 s or more.
    assert took < 1.8, took


def test_answers_are_kept_for_a_few_seconds_so_balancers_do_not_hammer_daytona(
    client, daytona_engine, monkeypatch
) -> None:
    with http_server({"/api/health": (200, "application/json", b"{}")}) as (url, seen):
        _connection("counted", url + "/api")
        for _ in range(3):
            assert client.get("/readyz").status_code == 200
        assert len(seen) == 1
        monkeypatch.setattr(health, "_kept", None)  # as when CONNECTIONS_CACHE_SECONDS pass
        assert client.get("/readyz").json()["connections"][1]["ok"] is True
        assert len(seen) == 2


def test_a_balancer_signed_out_gets_each_answer_without_the_names_admins_chose(
    client, admin_client, daytona_engine
) -> None:
    _connection("Acme production", daytona_engine.api_url, daytona_engine.api_key)
    _connection("away", _dead_url())
    signed_out = client.get("/readyz")
    as_admin = admin_client.get("/readyz").json()["connections"]
    assert signed_out.status_code == 200
    assert "Acme" not in signed_out.content.decode()
    assert signed_out.json()["connections"] == [
        {k: v for k, v in answer.items() if k != "name"} for answer in as_admin
    ]
    assert [answer["name"] for answer in as_admin] == ["Default", "Acme production", "away"]
