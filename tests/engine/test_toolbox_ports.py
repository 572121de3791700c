"""The rest of the daemon's toolbox: ports, the entrypoint session, computer use and LSP."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
import websockets
import websockets.sync.client
from daytona import DaytonaError, DaytonaNotFoundError, Sandbox, SessionExecuteRequest

from tests.engine.test_preview import get, wait_for_port
from tests.engine_server import EngineServer


def _listening(toolbox: httpx.Client, sandbox: Sandbox) -> list[int]:
    response = toolbox.get(f"/{sandbox.id}/port")
    assert response.status_code == 200, response.text
    return response.json()["ports"]


def _serve(sandbox: Sandbox, port: int, *, v6: bool = False) -> str:
    """A server on ``port`` in a session of its own; the session's id."""
    session = f"port-{uuid.uuid4().hex[:8]}"
    sandbox.process.create_session(session)
    bind = "::1" if v6 else "127.0.0.1"
    command = f"exec python3 -m http.server {port} --bind {bind}"
    sandbox.process.execute_session_command(
        session, SessionExecuteRequest(command=command, run_async=True)
    )
    return session


def test_ports_lists_what_listens_inside_the_sandbox_and_forgets_it_after(
    sandbox: Sandbox, toolbox: httpx.Client
) -> None:
    assert 7311 not in _listening(toolbox, sandbox)
    session = _serve(sandbox, 7311)
    wait_for_port(toolbox, sandbox.id, 7311)
    sandbox.process.delete_session(session)
    deadline = time.monotonic() + 10
    while 7311 in _listening(toolbox, sandbox) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert 7311 not in _listening(toolbox, sandbox)


def test_a_server_on_ipv6_loopback_is_listed_and_previewed(
    sandbox: Sandbox, toolbox: httpx.Client
) -> None:
    session = _serve(sandbox, 7312, v6=True)
    try:
        wait_for_port(toolbox, sandbox.id, 7312)
        link = sandbox.get_preview_link(7312)
        response = get(link.url, **{"X-Daytona-Preview-Token": link.token})
        assert response.status_code == 200, response.text
        assert "Directory listing" in response.text
    finally:
        sandbox.process.delete_session(session)


def test_ports_of_one_sandbox_are_not_another_sandboxs(
    sandbox: Sandbox, toolbox: httpx.Client, daytona: object
) -> None:
    session = _serve(sandbox, 7313)
    try:
        wait_for_port(toolbox, sandbox.id, 7313)
        other = daytona.create()  # type: ignore[attr-defined]
        try:
            assert 7313 not in _listening(toolbox, other)
        finally:
            other.delete()
    finally:
        sandbox.process.delete_session(session)


def test_in_use_answers_for_one_port(sandbox: Sandbox, toolbox: httpx.Client) -> None:
    session = _serve(sandbox, 7314)
    try:
        wait_for_port(toolbox, sandbox.id, 7314)
        assert toolbox.get(f"/{sandbox.id}/port/7314/in-use").json() == {"isInUse": True}
        assert toolbox.get(f"/{sandbox.id}/port/7315/in-use").json() == {"isInUse": False}
    finally:
        sandbox.process.delete_session(session)


@pytest.mark.parametrize(
    ("port", "message"),
    [
        ("2999", "port out of range: must be between 3000 and 9999"),
        ("10000", "port out of range: must be between 3000 and 9999"),
        ("http", "invalid port: must be a number between 3000 and 9999"),
    ],
)
def test_in_use_keeps_the_daemons_bounds(
    sandbox: Sandbox, toolbox: httpx.Client, port: str, message: str
) -> None:
    response = toolbox.get(f"/{sandbox.id}/port/{port}/in-use")
    assert response.status_code == 400
    assert response.json()["message"] == message


def test_ports_of_an_unknown_sandbox_is_a_404(toolbox: httpx.Client) -> None:
    assert toolbox.get(f"/{uuid.uuid4()}/port").status_code == 404


def test_ports_need_the_api_key(sandbox: Sandbox, engine: EngineServer) -> None:
    response = httpx.get(f"{engine.toolbox_url}/{sandbox.id}/port")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/computeruse/status"),
        ("POST", "/computeruse/start"),
        ("GET", "/computeruse/screenshot"),
        ("POST", "/computeruse/mouse/click"),
        ("GET", "/computeruse/recordings/abc/download"),
        ("POST", "/lsp/start"),
        ("GET", "/lsp/document-symbols"),
    ],
)
def test_computer_use_and_lsp_say_they_are_not_available(
    sandbox: Sandbox, toolbox: httpx.Client, method: str, path: str
) -> None:
    response = toolbox.request(method, f"/{sandbox.id}{path}")
    assert response.status_code == 503
    body = response.json()
    assert body["statusCode"] == 503
    assert "not available in the embedded engine" in body["message"]


def test_the_sdk_sees_computer_use_unavailable(sandbox: Sandbox) -> None:
    with pytest.raises(DaytonaError, match="not available in the embedded engine"):
        sandbox.computer_use.start()


def test_the_sdk_sees_lsp_unavailable(sandbox: Sandbox) -> None:
    server = sandbox.create_lsp_server("python", "/home/daytona")
    with pytest.raises(DaytonaError, match="not available in the embedded engine"):
        server.start()


def test_computer_use_of_an_unknown_sandbox_is_a_404(toolbox: httpx.Client) -> None:
    assert toolbox.get(f"/{uuid.uuid4()}/computeruse/status").status_code == 404


# -- the entrypoint session -------------------------------------------------------------


def test_a_sandbox_without_an_entrypoint_answers_as_the_daemon_does(sandbox: Sandbox) -> None:
    with pytest.raises(DaytonaNotFoundError, match="session entrypoint not found"):
        sandbox.process.get_entrypoint_session()
    with pytest.raises(DaytonaNotFoundError):
        sandbox.process.get_entrypoint_logs()


def test_following_entrypoint_logs_is_refused_with_the_404(
    sandbox: Sandbox, engine: EngineServer
) -> None:
    url = f"{engine.toolbox_url}/{sandbox.id}/process/session/entrypoint/logs?follow=true"
    headers = {"Authorization": f"Bearer {engine.api_key}"}
    with pytest.raises(websockets.InvalidStatus) as refused:
        websockets.sync.client.connect(url.replace("http://", "ws://"), additional_headers=headers)
    assert refused.value.response.status_code == 404


def test_the_entrypoint_session_takes_no_commands_or_input(
    sandbox: Sandbox, toolbox: httpx.Client
) -> None:
    base = f"/{sandbox.id}/process/session/entrypoint"
    response = toolbox.post(f"{base}/exec", json={"command": "true"})
    assert response.status_code == 400
    assert response.json()["message"] == "can't execute command in entrypoint session"
    response = toolbox.post(f"{base}/command/entrypoint_command/input", json={"data": "x"})
    assert response.status_code == 400
    assert response.json()["message"] == "can't send input to entrypoint session"
