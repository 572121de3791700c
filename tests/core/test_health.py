"""/healthz (liveness) and /readyz (readiness) as a load balancer sees them: no sign-in,
no secrets, a 503 with a reason per failed part, and ready again when the part is back.

The failures are real: Daytona is a loopback port nobody listens on, the database a
file the driver cannot open. Only the channel layer's failure is a stand-in: the
in-memory layer the tests use cannot fail, and no Redis server runs here.
"""

import logging
import socket

import pytest
from django.db import connections

from dashboard.core import health

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_kept_answers(monkeypatch) -> None:
    # Connections' answers are kept a few seconds: each test asks afresh.
    monkeypatch.setattr(health, "_kept", None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db(transaction=False)
@pytest.mark.usefixtures("_no_database")
def test_liveness_needs_no_sign_in_and_no_database(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok\n"


@pytest.fixture
def _no_database(django_db_blocker):
    # pytest-django's blocker: any query from the view fails the request.
    with django_db_blocker.block():
        yield


def test_readiness_passes_with_every_part_up(client, daytona_engine) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "checks": {
            "database": {"ok": True},
            "channel_layer": {"ok": True},
            "daytona": {"ok": True},
        },
        "connections": [{"ok": True, "reason": ""}],
    }
    assert response.headers["Cache-Control"].startswith("max-age=0")


def test_readiness_says_daytona_is_away_and_recovers_when_it_returns(
    client, daytona_engine, settings
) -> None:
    settings.DAYTONA_API_URL = f"http://127.0.0.1:{free_port()}/api"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["checks"]["daytona"] == {
        "ok": False,
        "reason": "no Daytona connection can be reached",
    }
    assert body["connections"] == [
        {"ok": False, "reason": "Daytona cannot be reached (ConnectError)"}
    ]
    assert body["checks"]["database"] == {"ok": True}
    # Nothing about where Daytona is or how Sandbar signs in to it.
    assert "127.0.0.1" not in response.content.decode()
    assert daytona_engine.api_key not in response.content.decode()
    settings.DAYTONA_API_URL = daytona_engine.api_url
    assert client.get("/readyz").status_code == 200


def test_readiness_says_the_database_is_away_and_recovers_when_it_returns(
    client, daytona_engine
) -> None:
    database = connections.settings["default"]
    name = database["NAME"]
    database["NAME"] = "/nonexistent/sandbar.sqlite3"
    try:
        health_connection_closed = client.get("/readyz")
    finally:
        database["NAME"] = name
    assert health_connection_closed.status_code == 503
    assert health_connection_closed.json()["checks"]["database"] == {
        "ok": False,
        "reason": "the database cannot be reached (OperationalError)",
    }
    assert "nonexistent" not in health_connection_closed.content.decode()
    assert client.get("/readyz").status_code == 200


class BrokenLayer:
    """A channel layer whose server is away (redis-py raises its ConnectionError)."""

    async def new_channel(self, prefix: str = "specific.") -> str:
        raise ConnectionError("Error 111 connecting to 10.0.0.5:6379. Connection refused.")


def test_readiness_says_the_channel_layer_is_away(client, daytona_engine, monkeypatch) -> None:
    monkeypatch.setattr(health, "get_channel_layer", BrokenLayer)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["channel_layer"] == {
        "ok": False,
        "reason": "the channel layer cannot be reached (ConnectionError)",
    }
    assert "10.0.0.5" not in response.content.decode()
    monkeypatch.undo()
    assert client.get("/readyz").status_code == 200


def test_a_slow_part_is_reported_within_the_time_limit(client, daytona_engine, monkeypatch) -> None:
    async def hangs() -> None:
        import asyncio

        await asyncio.sleep(60)

    monkeypatch.setattr(health, "CHECK_SECONDS", 0.2)
    monkeypatch.setitem(health.CHECKS, "channel_layer", hangs)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["channel_layer"] == {
        "ok": False,
        "reason": "no answer within 0.2 s",
    }


def test_a_part_away_is_logged_as_a_warning_not_an_error(
    client, daytona_engine, settings, caplog
) -> None:
    # A balancer asks every few seconds: an error line each time would bury real faults.
    settings.DAYTONA_API_URL = f"http://127.0.0.1:{free_port()}/api"
    with caplog.at_level(logging.INFO):
        assert client.get("/readyz").status_code == 503
    said = [(r.name, r.levelname) for r in caplog.records if "/readyz" in r.getMessage()]
    assert said == [("django.request", "WARNING")]
