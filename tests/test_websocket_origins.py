"""Every WebSocket route refuses a handshake whose Origin is not the dashboard's own.

A page on another port or scheme of the same host (or `null`, or no Origin at all)
must not reach any consumer with a signed-in person's cookie; the dashboard's own
origin, and an origin in CSRF_TRUSTED_ORIGINS, must.
"""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from dashboard.core.websocket import origin_problem
from tests.conftest import client_for
from tests.terminal.conftest import make_sandbox, new_session  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

HOST = b"127.0.0.1:8000"
REFUSED = [
    "http://127.0.0.1:9999",  # same host, another port
    "http://localhost:1234",  # an allowed host name, another port
    "https://127.0.0.1:8000",  # same host and port, another scheme
    "http://127.0.0.1",  # no port: port 80
    "null",  # a sandboxed iframe or a file: page
    "http://evil.test",
    None,  # no Origin header at all
]


def routes(sandbox_id: str) -> dict[str, str]:
    """One path per WebSocket route in dashboard/routing.py."""
    return {
        "terminal": f"/ws/sandboxes/{sandbox_id}/terminal/{new_session()}/?cols=80&rows=24",
        "logs": f"/ws/sandboxes/{sandbox_id}/logs/",
        "live list": "/ws/sandboxes/",
    }


async def handshake(
    user, path: str, origin: str | None, host: bytes = HOST, extra: tuple = ()
) -> bool:
    from dashboard.asgi import application

    client = await database_sync_to_async(client_for)(user)
    headers = [(b"host", host), (b"cookie", f"sessionid={client.session.session_key}".encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    headers.extend(extra)
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect(timeout=15)
    await communicator.disconnect()
    return connected


@pytest.fixture
async def sandbox_id(make_sandbox) -> str:  # noqa: F811
    return (await asyncio.to_thread(make_sandbox, owner="ada"))["id"]


@pytest.mark.parametrize("route", ["terminal", "logs", "live list"])
async def test_each_route_opens_for_the_dashboards_own_origin_only(
    route, sandbox_id, admin_user
) -> None:
    path = routes(sandbox_id)[route]
    assert await handshake(admin_user, path, "http://127.0.0.1:8000")
    for origin in REFUSED:
        assert not await handshake(admin_user, path, origin), f"{route} accepted {origin}"


@pytest.mark.parametrize("route", ["terminal", "logs", "live list"])
async def test_a_trusted_origin_and_the_proxys_scheme_are_honoured(
    route, sandbox_id, admin_user, settings
) -> None:
    path = routes(sandbox_id)[route]
    settings.ALLOWED_HOSTS = ["sandbar.example.com", "127.0.0.1"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://sandbar.example.com"]
    host = b"sandbar.example.com"
    assert await handshake(admin_user, path, "https://sandbar.example.com", host)
    assert not await handshake(admin_user, path, "https://sandbar.example.com:8443", host)
    assert not await handshake(admin_user, path, "https://other.example.com", host)
    # Behind a TLS proxy the page is https while the proxy talks ws to us.
    proto = ((b"x-forwarded-proto", b"https"),)
    assert not await handshake(admin_user, path, "https://127.0.0.1:8000", HOST, proto)
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert await handshake(admin_user, path, "https://127.0.0.1:8000", HOST, proto)
    assert not await handshake(admin_user, path, "http://127.0.0.1:8000", HOST, proto)


def test_a_host_outside_allowed_hosts_is_refused_even_when_the_origin_matches_it() -> None:
    # What a DNS-rebinding page sends: its own name as Host and as Origin.
    scope = {
        "type": "websocket",
        "scheme": "ws",
        "headers": [(b"host", b"evil.test:8000"), (b"origin", b"http://evil.test:8000")],
    }
    assert "ALLOWED_HOSTS" in origin_problem(scope)
