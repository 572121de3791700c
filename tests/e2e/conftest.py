"""Browser tests: the real ASGI app on a loopback port, driven by headless Chromium."""

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import uvicorn

from dashboard.accounts.access import OWNER_LABEL

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def asgi_live_server(django_db_setup) -> Iterator[str]:
    """The dashboard's ASGI application (HTTP and WebSockets) served from a thread."""
    port = _free_port()
    config = uvicorn.Config(
        "dashboard.asgi:application",
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="e2e-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the e2e server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Chromium for one test module.

    Playwright's sync API keeps an event loop running in this thread, which makes
    Django refuse ORM calls as "async unsafe"; they are safe here (nothing else
    runs in this thread), so the check is lifted for this module only, and the
    loop is gone before the next module's tests run.
    """
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser) -> Iterator:
    """A fresh browser tab that records every console error and CSP violation."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.console_errors = []
    tab.on(
        "console",
        lambda message: message.type == "error" and tab.console_errors.append(message.text),
    )
    tab.on("pageerror", lambda error: tab.console_errors.append(str(error)))
    yield tab
    context.close()


@pytest.fixture
def sandbox(daytona_engine):
    """A sandbox owned by "mel", deleted after the test."""
    with daytona_engine.client() as http:
        body = {"name": f"e2e-{uuid.uuid4().hex[:8]}", "labels": {OWNER_LABEL: "mel"}}
        created = http.post("/sandbox", json=body).json()
    yield created
    with daytona_engine.client() as http:
        http.delete(f"/sandbox/{created['id']}")


def sign_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/sign-in/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
