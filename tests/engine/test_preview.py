"""Preview URLs: servers inside a sandbox reached through the engine's own port.

Everything goes over real HTTP and WebSockets to the engine on 127.0.0.1. Python's
resolver (unlike a browser's or curl's) does not map ``*.localhost`` to loopback, so
each request connects to 127.0.0.1 and names the preview host in its Host header,
which is all a browser sends differently.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
import websockets
from daytona import Daytona, DaytonaError, Sandbox, SessionExecuteRequest
from starlette.types import Receive, Scope, Send
from websockets.sync.client import connect as ws_connect

from dashboard.engine.lifecycle import Engine
from dashboard.engine.preview import PreviewHosts, Previews
from tests.engine_server import EngineServer

SERVER = Path(__file__).with_name("preview_server.py")
SITE_PORT = 3000  # python -m http.server
APP_PORT = 8080  # preview_server.py: headers, streams, uploads, WebSocket echo
CLOSED_PORT = 4999


def wait_for_port(toolbox: httpx.Client, sandbox_id: str, port: int, timeout: float = 20) -> None:
    """Until the toolbox lists ``port`` as listening inside the sandbox."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = toolbox.get(f"/{sandbox_id}/port")
        assert response.status_code == 200, response.text
        if port in response.json()["ports"]:
            return
        time.sleep(0.1)
    raise AssertionError(f"port {port} never listened in {sandbox_id}")


def start_servers(sandbox: Sandbox, toolbox: httpx.Client) -> None:
    """http.server on SITE_PORT over a known file, preview_server.py on APP_PORT."""
    sandbox.fs.upload_file(SERVER.read_bytes(), "preview_server.py")
    sandbox.fs.upload_file(b"hello from the sandbox\n", "site/index.txt")
    for command in (
        f"cd ~/site && exec python3 -m http.server {SITE_PORT} --bind 127.0.0.1",
        f"exec python3 ~/preview_server.py {APP_PORT}",
    ):
        session = f"servers-{uuid.uuid4().hex[:8]}"
        sandbox.process.create_session(session)
        request = SessionExecuteRequest(command=command, run_async=True)
        sandbox.process.execute_session_command(session, request)
    wait_for_port(toolbox, sandbox.id, SITE_PORT)
    wait_for_port(toolbox, sandbox.id, APP_PORT)


@pytest.fixture(scope="module")
def site(daytona: Daytona, toolbox: httpx.Client) -> Iterator[Sandbox]:
    """A private sandbox running both servers."""
    sandbox = daytona.create()
    start_servers(sandbox, toolbox)
    yield sandbox
    sandbox.delete()


def preview_client(url: str, **headers: str) -> httpx.Client:
    """A client for a preview URL: connects to 127.0.0.1, sends the preview Host."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname and parts.hostname.endswith(".localhost"), url
    return httpx.Client(
        base_url=f"http://127.0.0.1:{parts.port}",
        headers={"Host": parts.netloc, **headers},
        timeout=30,
    )


def get(url: str, path: str = "/", **headers: str) -> httpx.Response:
    with preview_client(url, **headers) as client:
        return client.get(path)


def ws_open(url: str, path: str = "/", **headers: str) -> websockets.sync.client.ClientConnection:
    """A WebSocket to a preview URL, over a socket to 127.0.0.1."""
    parts = urllib.parse.urlsplit(url)
    sock = socket.create_connection(("127.0.0.1", parts.port or 80))
    try:
        return ws_connect(
            f"ws://{parts.netloc}{path}",
            sock=sock,
            additional_headers=headers,
            open_timeout=10,
            subprotocols=["echo.v1"],  # type: ignore[list-item]
        )
    except BaseException:
        sock.close()
        raise


# -- the URLs -------------------------------------------------------------------------


def test_the_sdk_preview_link_names_the_port_and_sandbox_on_the_engine_port(
    site: Sandbox, engine: EngineServer
) -> None:
    link = site.get_preview_link(SITE_PORT)
    assert link.url == f"http://{SITE_PORT}-{site.id}.localhost:{engine.port}"
    assert link.token and link.token == site.get_preview_link(APP_PORT).token
    assert link.sandbox_id == site.id


def test_the_sdk_preview_link_reaches_http_server_in_the_sandbox(site: Sandbox) -> None:
    link = site.get_preview_link(SITE_PORT)
    response = get(link.url, "/index.txt", **{"X-Daytona-Preview-Token": link.token})
    assert response.status_code == 200, response.text
    assert response.text == "hello from the sandbox\n"


def test_preview_url_bad_input_is_a_400_and_an_unknown_sandbox_a_404(api: httpx.Client) -> None:
    for port in ("0", "65536", "http"):
        response = api.get(f"/sandbox/x/ports/{port}/preview-url")
        assert response.status_code == 400, response.text
        assert response.json()["message"] == "Invalid port"
    response = api.get(f"/sandbox/{uuid.uuid4()}/ports/3000/preview-url")
    assert response.status_code == 404


def test_signed_preview_url_limits_are_daytonas(site: Sandbox, api: httpx.Client) -> None:
    for bad in ("0", "86401", "soon"):
        response = api.get(
            f"/sandbox/{site.id}/ports/3000/signed-preview-url", params={"expiresInSeconds": bad}
        )
        assert response.status_code == 400, response.text
    response = api.get(f"/sandbox/{site.id}/ports/3000/signed-preview-url")
    body = response.json()
    assert set(body) == {"sandboxId", "port", "token", "url"}
    assert (body["sandboxId"], body["port"]) == (site.id, 3000)
    assert body["url"].startswith(f"http://3000-{body['token']}.localhost:")


# -- who may reach it -------------------------------------------------------------------


def test_a_private_sandbox_refuses_a_request_without_a_valid_token(
    site: Sandbox, engine: EngineServer
) -> None:
    link = site.get_preview_link(SITE_PORT)
    missing = get(link.url, "/index.txt")
    assert missing.status_code == 401
    assert "X-Daytona-Preview-Token" in missing.json()["message"]
    wrong = get(link.url, "/index.txt", **{"X-Daytona-Preview-Token": link.token[::-1]})
    assert wrong.status_code == 401
    other = get(link.url, "/index.txt", Authorization="Bearer not-the-key")
    assert other.status_code == 401
    by_key = get(link.url, "/index.txt", Authorization=f"Bearer {engine.api_key}")
    assert by_key.status_code == 200
    by_query = get(link.url, f"/index.txt?DAYTONA_SANDBOX_AUTH_KEY={link.token}")
    assert by_query.status_code == 200


def test_the_query_token_is_taken_out_and_the_rest_of_the_query_kept(site: Sandbox) -> None:
    link = site.get_preview_link(APP_PORT)
    path = f"/echo?a=b%20c&DAYTONA_SANDBOX_AUTH_KEY={link.token}&z=1+2"
    response = get(link.url, path)
    assert response.status_code == 200, response.text
    assert response.text == "preview /echo?a=b%20c&z=1+2"


def test_a_browser_refused_gets_an_html_page(site: Sandbox) -> None:
    response = get(site.get_preview_link(SITE_PORT).url, Accept="text/html,*/*")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert "private" in response.text


def test_the_credential_stays_with_the_engine(site: Sandbox, engine: EngineServer) -> None:
    link = site.get_preview_link(APP_PORT)
    seen = get(link.url, "/headers", **{"X-Daytona-Preview-Token": link.token}).json()
    assert "x-daytona-preview-token" not in seen
    assert seen["host"] == f"localhost:{APP_PORT}"
    assert seen["x-forwarded-host"] == urllib.parse.urlsplit(link.url).netloc
    seen = get(link.url, "/headers", Authorization=f"Bearer {engine.api_key}").json()
    assert "authorization" not in seen


def test_the_api_key_never_reaches_the_sandbox_whatever_let_the_request_in(
    site: Sandbox, engine: EngineServer
) -> None:
    link = site.get_preview_link(APP_PORT)
    key = f"Bearer {engine.api_key}"
    both = {"X-Daytona-Preview-Token": link.token, "Authorization": key}
    assert "authorization" not in get(link.url, "/headers", **both).json()
    signed = site.create_signed_preview_url(APP_PORT, expires_in_seconds=60)
    assert "authorization" not in get(signed.url, "/headers", Authorization=key).json()
    site.set_public(True)
    try:
        seen = get(link.url, "/headers", Authorization=key).json()
    finally:
        site.set_public(False)
    assert "authorization" not in seen
    # A header that is not the key is the client's own business, and goes on.
    own = get(
        link.url,
        "/headers",
        Authorization="Bearer app-session",
        **{"X-Daytona-Preview-Token": link.token},
    ).json()
    assert own["authorization"] == "Bearer app-session"


def test_a_public_sandbox_needs_no_token(site: Sandbox) -> None:
    url = site.get_preview_link(SITE_PORT).url
    site.set_public(True)
    try:
        assert get(url, "/index.txt").status_code == 200
    finally:
        site.set_public(False)
    assert get(url, "/index.txt").status_code == 401


def test_a_signed_url_works_without_headers_until_it_expires(site: Sandbox) -> None:
    signed = site.create_signed_preview_url(SITE_PORT, expires_in_seconds=2)
    response = get(signed.url, "/index.txt")
    assert response.status_code == 200, response.text
    assert response.text == "hello from the sandbox\n"
    other_port = signed.url.replace(f"//{SITE_PORT}-", f"//{APP_PORT}-")
    assert get(other_port, "/index.txt").status_code == 401
    time.sleep(2.2)
    expired = get(signed.url, "/index.txt")
    assert expired.status_code == 401
    assert "expired" in expired.json()["message"]


def test_an_expired_signed_url_is_refused_at_once(site: Sandbox) -> None:
    signed = site.create_signed_preview_url(SITE_PORT, expires_in_seconds=600)
    assert get(signed.url, "/index.txt").status_code == 200
    site.expire_signed_preview_url(SITE_PORT, signed.token)
    assert get(signed.url, "/index.txt").status_code == 401


def test_an_unknown_sandbox_host_is_a_404(engine: EngineServer) -> None:
    url = f"http://{SITE_PORT}-{uuid.uuid4()}.localhost:{engine.port}"
    assert get(url).status_code == 404


def test_a_sandbox_is_previewed_by_id_never_by_name(
    engine: EngineServer, api: httpx.Client
) -> None:
    name = f"named-{uuid.uuid4().hex[:8]}"
    created = api.post("/sandbox", json={"name": name})
    assert created.status_code == 200, created.text
    try:
        key = {"Authorization": f"Bearer {engine.api_key}"}
        by_name = get(f"http://{SITE_PORT}-{name}.localhost:{engine.port}", **key)
        assert by_name.status_code == 404
        by_id = get(f"http://{SITE_PORT}-{created.json()['id']}.localhost:{engine.port}", **key)
        assert by_id.status_code == 502  # found, and nothing listens there
    finally:
        api.delete(f"/sandbox/{created.json()['id']}")


def test_only_an_exact_preview_host_is_routed_to_a_sandbox(
    site: Sandbox, engine: EngineServer
) -> None:
    # A page elsewhere (a look-alike name, or DNS rebinding to 127.0.0.1, which sends the
    # page's own name) reaches the API and its Bearer check, never a sandbox.
    link = site.get_preview_link(SITE_PORT)
    token = {"X-Daytona-Preview-Token": link.token}
    host = urllib.parse.urlsplit(link.url).netloc
    name = host.rsplit(":", 1)[0]
    for other in (f"{name}.evil.com", f"{name}.", f"evil.com?{name}", f"x.{name}", "evil.com"):
        with preview_client(link.url, **token) as client:
            refused = client.get("/index.txt", headers={"Host": f"{other}:{engine.port}"})
        assert refused.status_code == 401, other
        assert "API key" in refused.json()["message"], other
    shouted = get(link.url.replace(name, name.upper()), "/index.txt", **token)
    assert shouted.status_code == 200


def test_a_preview_host_with_an_impossible_port_is_a_400(engine: EngineServer) -> None:
    for port in (0, 65536):
        response = get(f"http://{port}-{uuid.uuid4()}.localhost:{engine.port}")
        assert response.status_code == 400
        assert response.json()["message"] == "Invalid port"


# -- what comes back ------------------------------------------------------------------


def test_a_closed_port_gets_a_clear_error(site: Sandbox) -> None:
    link = site.get_preview_link(CLOSED_PORT)
    token = {"X-Daytona-Preview-Token": link.token}
    response = get(link.url, **token)
    assert response.status_code == 502
    assert f"Nothing is listening on port {CLOSED_PORT}" in response.json()["message"]
    page = get(link.url, Accept="text/html", **token)
    assert page.status_code == 502 and "<h1>Nothing listening</h1>" in page.text


def rss_mib(pid: int) -> float:
    """A process's resident memory, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.slow
def test_a_large_answer_streams_without_being_held(site: Sandbox, engine: EngineServer) -> None:
    """The server never ends its answer: a proxy that read it whole would never reply,
    and one that queued what the client has not read yet would grow by hundreds of MiB."""
    assert engine.process is not None
    link = site.get_preview_link(APP_PORT)
    wanted = 160 << 20
    received = 0
    before = rss_mib(engine.process.pid)
    with (
        preview_client(link.url, **{"X-Daytona-Preview-Token": link.token}) as client,
        client.stream("GET", "/endless") as response,
    ):
        assert response.status_code == 200
        for piece in response.iter_raw(1 << 20):
            received += len(piece)
            if received >= wanted:
                break
            if received == len(piece):
                time.sleep(2)  # a stalled reader: the relay must wait, not queue
    assert received >= wanted
    assert rss_mib(engine.process.pid) - before < 64


def test_the_first_bytes_arrive_before_the_rest_is_written(site: Sandbox) -> None:
    link = site.get_preview_link(APP_PORT)
    with (
        preview_client(link.url, **{"X-Daytona-Preview-Token": link.token}) as client,
        client.stream("GET", "/slow") as response,
    ):
        start = time.monotonic()
        pieces = response.iter_raw()
        assert next(pieces) == b"first"
        assert time.monotonic() - start < 1.5
        assert b"".join(pieces) == b"second"


@pytest.mark.slow
def test_a_large_upload_streams_to_the_sandbox_intact(site: Sandbox) -> None:
    link = site.get_preview_link(APP_PORT)
    data = os.urandom(32 << 20)
    with preview_client(link.url, **{"X-Daytona-Preview-Token": link.token}) as client:
        response = client.post("/digest", content=data)
    assert response.status_code == 200, response.text
    assert response.json() == {"sha256": hashlib.sha256(data).hexdigest(), "length": len(data)}


def test_a_websocket_echoes_through_the_preview(site: Sandbox) -> None:
    link = site.get_preview_link(APP_PORT)
    with ws_open(link.url, "/echo", **{"X-Daytona-Preview-Token": link.token}) as ws:
        assert ws.subprotocol == "echo.v1"
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        blob = os.urandom(200_000)
        ws.send(blob)
        assert ws.recv(timeout=10) == blob
        ws.close(code=4001, reason="bye")
    assert ws.close_code == 4001


def test_a_websocket_to_a_private_sandbox_needs_the_token(site: Sandbox) -> None:
    link = site.get_preview_link(APP_PORT)
    with pytest.raises(websockets.InvalidStatus) as refused:
        ws_open(link.url, "/echo")
    assert refused.value.response.status_code == 401


def test_a_websocket_through_a_signed_url(site: Sandbox) -> None:
    signed = site.create_signed_preview_url(APP_PORT, expires_in_seconds=60)
    with ws_open(signed.url, "/echo") as ws:
        ws.send("signed")
        assert ws.recv(timeout=10) == "signed"


def test_a_websocket_to_a_closed_port_is_refused_with_502(site: Sandbox) -> None:
    link = site.get_preview_link(CLOSED_PORT)
    with pytest.raises(websockets.InvalidStatus) as refused:
        ws_open(link.url, **{"X-Daytona-Preview-Token": link.token})
    assert refused.value.response.status_code == 502


def test_a_stopped_sandbox_is_not_reached_nor_one_with_anothers_token(
    daytona: Daytona, site: Sandbox
) -> None:
    sandbox = daytona.create()
    try:
        link = sandbox.get_preview_link(SITE_PORT)
        foreign = site.get_preview_link(SITE_PORT).token
        assert get(link.url, **{"X-Daytona-Preview-Token": foreign}).status_code == 401
        sandbox.stop()
        response = get(link.url, **{"X-Daytona-Preview-Token": link.token})
        assert response.status_code == 409
        assert "not started" in response.json()["message"]
    finally:
        sandbox.delete()


def test_the_sdk_reports_a_bad_expiry(site: Sandbox) -> None:
    with pytest.raises(DaytonaError, match="between 1 second and 24 hours"):
        site.create_signed_preview_url(SITE_PORT, expires_in_seconds=0)


# -- failures the engine cannot be made to produce --------------------------------------


class _BrokenStore:
    def get(self, id_or_name: str) -> None:
        raise RuntimeError("the database went away")


class _BrokenEngine:
    store = _BrokenStore()


async def test_an_unexpected_failure_is_a_500_in_daytonas_shape_not_a_dropped_connection() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("a preview host never reaches the API")

    previews = Previews(cast(Engine, _BrokenEngine()), "key")
    transport = httpx.ASGITransport(app=PreviewHosts(app, previews))
    async with httpx.AsyncClient(transport=transport, base_url="http://3000-x.localhost") as client:
        response = await client.get("/")
    assert response.status_code == 500
    assert response.json()["message"] == "Internal server error"
