"""Production behaviour: deploy checks, logs, shutdown, descriptors, keep-alive, scrollback.

The servers here are real: uvicorn as `manage.py up` runs it (in a thread when the test
reads this process's logs, in a subprocess when it sends the server a signal), the
embedded engine, a real PTY. The one stand-in is a loopback HTTP server that drops a
kept-alive connection on cue, a race the engine cannot be made to lose on demand.
"""

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings

from dashboard.core import logs
from dashboard.daytona import client as daytona_client
from dashboard.engine import pty as ptys
from dashboard.engine import server as engine_server
from tests.conftest import client_for
from tests.engine.test_pty_local import started, wait_exit
from tests.engine_server import start_engine
from tests.served_client import ServedClient
from tests.terminal import conftest as terminal
from tests.terminal.conftest import new_session

ROOT = Path(__file__).resolve().parents[2]
make_sandbox = terminal.make_sandbox  # the terminal tests' fixture, used here too
UVICORN_ARGS = ["--ws", "websockets-sansio", "--lifespan", "on", "--timeout-graceful-shutdown", "5"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_env() -> dict[str, str]:
    """The variables docs/deploy.md lists for production, read from its own block."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    block = re.search(r"<!-- production-env -->\s*```sh\n(.*?)```", text, re.DOTALL)
    assert block, "docs/deploy.md has no production variables block"
    pairs = re.findall(r"^([A-Z][A-Z0-9_]+)=(\S+)", block.group(1), re.MULTILINE)
    assert len(pairs) >= 5
    return dict(pairs)


def manage(*args: str, env: dict[str, str], data_dir: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in production_env()}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, "SANDBAR_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- settings -------------------------------------------------------------------------


def test_the_deploy_check_is_clean_with_the_documented_production_variables(tmp_path) -> None:
    documented = production_env()
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", env=documented, data_dir=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Without them the same check fails: it is the variables that make it clean.
    bare = manage("check", "--deploy", "--fail-level", "WARNING", env={}, data_dir=tmp_path)
    assert bare.returncode != 0
    assert "security.W004" in bare.stderr + bare.stdout


def test_hsts_is_sent_over_https_only_when_set(settings) -> None:
    # A client per setting: Django's security middleware reads it when it is built.
    assert "Strict-Transport-Security" not in ServedClient().get("/healthz", secure=True)
    settings.SECURE_HSTS_SECONDS = 300
    response = ServedClient().get("/healthz", secure=True)
    assert response.headers["Strict-Transport-Security"] == "max-age=300"
    assert "Strict-Transport-Security" not in ServedClient().get("/healthz").headers


def test_a_bad_log_format_stops_the_start_with_a_message(tmp_path) -> None:
    result = manage("check", env={"SANDBAR_LOG_FORMAT": "xml"}, data_dir=tmp_path)
    assert result.returncode != 0
    assert "SANDBAR_LOG_FORMAT must be text or json" in result.stderr


# -- logs ------------------------------------------------------------------------------


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the console handler settings.LOGGING configured writes, as JSON lines."""
    # Its first import sets Django up again, which configures logging anew.
    import dashboard.asgi  # noqa: F401

    handler = next(
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, logs.RequestContext) for f in h.filters)
    )
    stream, formatter = io.StringIO(), handler.formatter
    old_stream = handler.setStream(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.setLevel(level)
        handler.setFormatter(formatter)
        handler.setStream(old_stream)


def parsed(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def asgi_get(path: str, **headers: str) -> httpx.Response:
    """A request through dashboard.asgi.application, the app uvicorn serves."""
    from dashboard.asgi import application

    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        return await http.get(path, headers=headers)


@pytest.mark.django_db(transaction=True)
async def test_a_request_id_is_honoured_echoed_and_on_its_log_lines(admin_user, log_lines) -> None:
    client = await sync_to_async(client_for)(admin_user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    response = await asgi_get("/no-such-page/", cookie=cookie, **{"X-Request-ID": "lb-4711"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "lb-4711"
    mine = [line for line in parsed(log_lines) if line["request_id"] == "lb-4711"]
    assert any("Not Found: /no-such-page/" in line["message"] for line in mine), parsed(log_lines)


async def test_a_request_without_a_sane_id_gets_a_new_one() -> None:
    first = await asgi_get("/healthz")
    forged = await asgi_get("/healthz", **{"X-Request-ID": "a b\tforged"})
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["X-Request-ID"])
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != forged.headers["X-Request-ID"]


@pytest.mark.django_db(transaction=True)
def test_the_api_key_never_appears_in_a_log_line(
    daytona_engine, admin_client, log_lines, settings
) -> None:
    key = daytona_engine.api_key
    # Pages that call Daytona, one that fails at Daytona, readiness with Daytona away.
    assert admin_client.get("/sandboxes/").status_code == 200
    admin_client.get("/sandboxes/no-such-sandbox/")
    settings.DAYTONA_API_URL = f"http://127.0.0.1:{free_port()}/api"
    assert admin_client.get("/readyz").status_code == 503
    admin_client.get("/sandboxes/")
    # And code that would log it outright, in a message, its arguments or a traceback.
    log = logging.getLogger("dashboard.test")
    log.info("calling with %s", daytona_client.auth_header())
    log.warning(f"the key is {key}")
    try:
        raise RuntimeError(f"failed with key {key}")
    except RuntimeError:
        log.exception("with a traceback")
    text = log_lines.getvalue()
    assert "calling with" in text
    assert "with a traceback" in text
    assert "failed with key [masked]" in text
    assert key not in text
    assert settings.SECRET_KEY not in text


# -- shutdown --------------------------------------------------------------------------


def no_retry_codes() -> set[int]:
    """Close codes on which some page's socket gives up (static/js)."""
    codes: set[int] = set()
    js = ROOT / "static" / "js"
    base = re.search(r"var NO_RETRY = \[([^\]]*)\]", (js / "reconnect.js").read_text())
    assert base
    codes |= {int(c) for c in re.findall(r"\d+", base.group(1))}
    for script in js.glob("*.js"):
        for listed in re.findall(r"noRetry:\s*\[([^\]]*)\]", script.read_text()):
            codes |= {int(c) for c in re.findall(r"\d+", listed)}
    return codes


@pytest.fixture
def served_process(daytona_engine) -> Iterator[tuple[subprocess.Popen, int]]:
    """The dashboard in its own uvicorn process, as `manage.py up` starts it."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{settings.DATABASES['default']['NAME']}",
        "DAYTONA_API_URL": daytona_engine.api_url,
        "DAYTONA_API_KEY": daytona_engine.api_key,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "dashboard.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), *UVICORN_ARGS],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        assert time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.1)
    yield process, port
    if process.poll() is None:
        process.kill()
    process.wait(10)
    process.stdout.close()  # type: ignore[union-attr]


@pytest.mark.django_db(transaction=True)
async def test_a_graceful_shutdown_closes_websockets_with_a_code_pages_retry(
    served_process, make_sandbox, member_user
) -> None:
    process, port = served_process
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    client = await sync_to_async(client_for)(member_user)
    headers = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    origin = f"http://127.0.0.1:{port}"
    paths = ["/ws/sandboxes/", f"/ws/sandboxes/{sandbox['id']}/terminal/{new_session()}/"]
    sockets = [
        await websockets.connect(f"ws://127.0.0.1:{port}{path}", origin=origin,  # type: ignore[arg-type]
                                 additional_headers=headers)
        for path in paths
    ]  # fmt: skip
    terminal = sockets[1]
    assert json.loads(await asyncio.wait_for(terminal.recv(), 10))["type"] == "hello"
    process.send_signal(signal.SIGTERM)
    codes = []
    for ws in sockets:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        codes.append(ws.close_code)
    assert codes == [1012, 1012]  # "service restart"
    assert 1012 not in no_retry_codes()
    # uvicorn ends by raising the signal it caught again, once it has shut down cleanly.
    assert await asyncio.to_thread(process.wait, 15) == -signal.SIGTERM
    output = process.stdout.read().decode()  # type: ignore[union-attr]
    assert "Application shutdown complete" in output, output


def test_the_pages_treat_a_restart_as_retryable_and_a_refusal_as_final() -> None:
    codes = no_retry_codes()
    assert {4401, 4403, 4404} <= codes  # the helper itself is read, not an empty set
    assert not {1001, 1006, 1011, 1012} & codes


# -- the terminal pump -----------------------------------------------------------------


@pytest.fixture
def served_thread() -> Iterator[int]:
    """The dashboard under uvicorn in a thread of this process (so caplog sees its logs)."""
    port = free_port()
    config = uvicorn.Config(
        "dashboard.asgi:application", host="127.0.0.1", port=port, log_level="warning",
        lifespan="on", ws="websockets-sansio",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name="production-uvicorn")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


@pytest.mark.django_db(transaction=True)
async def test_a_shell_that_exits_as_its_tab_closes_logs_no_error(
    make_sandbox, member_user, caplog, served_thread
) -> None:
    sandbox = await asyncio.to_thread(make_sandbox, owner="mel")
    client = await sync_to_async(client_for)(member_user)
    headers = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    origin = f"http://127.0.0.1:{served_thread}"
    # The tab closes as soon as the shell says goodbye, racing the shell's exit through
    # the pump; before the fix two runs in three logged "terminal pump failed".
    with caplog.at_level(logging.DEBUG, logger="dashboard.terminal"):
        for _ in range(4):
            url = f"ws://127.0.0.1:{served_thread}/ws/sandboxes/{sandbox['id']}/terminal/{new_session()}/"
            async with websockets.connect(url, origin=origin, additional_headers=headers) as ws:  # type: ignore[arg-type]
                await asyncio.wait_for(ws.recv(), 10)
                await ws.send(b"exit\r")
                while b"logout" not in await asyncio.wait_for(ws.recv(), 10):
                    pass
        await asyncio.sleep(1)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


# -- descriptors -----------------------------------------------------------------------


def lowered_soft_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


def test_the_dashboard_raises_its_open_files_limit_to_the_hard_one() -> None:
    script = (
        "import resource; import dashboard.asgi; print(*resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
        preexec_fn=lowered_soft_limit, timeout=60, check=True,
    )  # fmt: skip
    soft, hard = map(int, result.stdout.split())
    assert soft == hard > 256


def nofile_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open files line")


def test_the_engine_raises_its_open_files_limit_to_the_hard_one(tmp_path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # The engine inherits this process's limits: lowered only while it starts.
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        engine = start_engine(tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        assert engine.process is not None
        assert nofile_limits(engine.process.pid) == (hard, hard)
    finally:
        engine.stop()


# -- keep-alive ------------------------------------------------------------------------


def test_the_client_lets_idle_connections_go_before_the_engine_does() -> None:
    config = engine_server.uvicorn_config(engine_server.load_config(), app=None)
    assert config.timeout_keep_alive > daytona_client.KEEPALIVE_SECONDS


class DroppingServer:
    """A loopback HTTP/1.1 server that answers the first request on each connection
    and closes the connection on the second without answering: what a server does when
    its idle timeout fires as the client reuses the connection."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/api"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        for answered in range(2):
            head = await reader.readuntil(b"\r\n\r\n")
            request_line = head.split(b"\r\n")[0].decode()
            length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
            if length:
                await reader.readexactly(int(length.group(1)))
            self.requests.append(request_line)
            if answered:
                break
            body = b'{"ok": true}'
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
        writer.close()


async def test_a_dropped_read_is_retried_once_and_a_write_never(settings, monkeypatch) -> None:
    server = DroppingServer()
    async with server as url:
        settings.DAYTONA_API_URL = url
        settings.DAYTONA_API_KEY = "k" * 20
        # A server another test runs in a thread of this process may already share a
        # client (then calls here get one each and never reuse a connection): this test
        # plays a server of its own, and the other's is put back afterwards.
        monkeypatch.setattr(daytona_client, "_shared", None)
        await daytona_client.open_shared()
        try:
            await daytona_client.request("GET", "/sandbox")
            assert await daytona_client.request("GET", "/sandbox") == {"ok": True}
            # The read was sent twice: on the dropped connection, then on a new one.
            assert server.requests.count("GET /api/sandbox HTTP/1.1") == 3
            assert server.connections == 2
            with pytest.raises(daytona_client.Unavailable, match="RemoteProtocolError"):
                await daytona_client.request("POST", "/sandbox", json={})
            # A write may have taken effect: it is not sent again.
            assert server.requests.count("POST /api/sandbox HTTP/1.1") == 1
        finally:
            await daytona_client.close_shared()


# -- scrollback ------------------------------------------------------------------------


def held_bytes(terminal: ptys.Terminal) -> int:
    return sum(sys.getsizeof(chunk) for chunk in terminal.scrollback)


async def test_scrollback_grows_by_use_and_small_outputs_share_chunks() -> None:
    # 300 one-byte outputs, each its own read, as echoed keystrokes are.
    terminal = await started("sh", "-c", "for i in $(seq 300); do printf x; sleep 0.004; done")
    assert await wait_exit(terminal) == 0
    assert terminal.replay_raw().count(b"x") == 300
    # Held as it came, not a preallocated 256 KiB; and not ~40 bytes per key of overhead.
    assert terminal.scrollback_bytes < 1024
    assert held_bytes(terminal) < 2 * terminal.scrollback_bytes + 200


async def test_scrollback_stops_at_its_cap_and_keeps_the_latest_output() -> None:
    terminal = await started("sh", "-c", "head -c 600000 /dev/zero | tr '\\0' a; printf END")
    assert await wait_exit(terminal) == 0
    assert ptys.SCROLLBACK_BYTES <= terminal.scrollback_bytes < ptys.SCROLLBACK_BYTES + (64 << 10)
    assert terminal.replay_raw().endswith(b"END")
    assert held_bytes(terminal) < terminal.scrollback_bytes * 1.05
