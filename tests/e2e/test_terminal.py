"""The terminal in a real browser: type, see, lose the connection, find the same shell."""

import os
import re
import time

import pytest

from dashboard.accounts.models import Role
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Set to a folder to keep screenshots of the terminal in both themes.
SHOTS = os.environ.get("SANDBAR_TEST_SCREENSHOTS", "")


def screen_text(page) -> str:
    return page.inner_text("[data-term-screen] .xterm-rows")


def wait_for_screen(page, pattern: str, seconds: float = 10) -> re.Match:
    # Polled from here: wait_for_function would evaluate a string, which the CSP forbids.
    deadline = time.monotonic() + seconds
    while True:
        found = re.search(pattern, screen_text(page))
        if found:
            return found
        assert time.monotonic() < deadline, f"{pattern!r} not on screen: {screen_text(page)!r}"
        page.wait_for_timeout(100)


def test_the_terminal_types_survives_a_dropped_connection_and_finds_the_same_shell(
    page, asgi_live_server, sandbox
) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    page.goto(f"{asgi_live_server}/sandboxes/{sandbox['id']}/?tab=terminal")
    page.wait_for_selector("[data-term-status][data-state=open]", timeout=15000)
    page.click("[data-term-screen]")
    # 24-bit colour: xterm.js styles such cells inline, which the CSP must not block.
    page.keyboard.type("printf '\\033[38;2;255;120;0mtruecolor\\033[0m\\n'\n")
    wait_for_screen(page, "truecolor\n")
    page.keyboard.type("echo hello-from-browser pid=$$.\n")
    pid = wait_for_screen(page, r"hello-from-browser pid=(\d+)\.").group(1)
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/terminal-light.png")

    page.evaluate("window.sandbarTerminal.drop()")
    page.wait_for_selector("[data-term-banner]:not([hidden])", timeout=5000)
    assert "Connection lost, retrying in" in page.inner_text("[data-term-banner]")
    assert page.get_attribute("[data-term-status]", "data-state") == "down"
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/terminal-banner.png")
    page.click("[data-term-retry]")
    page.wait_for_selector("[data-term-status][data-state=open]", timeout=15000)
    assert page.is_hidden("[data-term-banner]")
    # The same shell, redrawn: what was on the screen is still there.
    wait_for_screen(page, "hello-from-browser")
    page.click("[data-term-screen]")
    page.keyboard.type("echo again-$$-done\n")
    wait_for_screen(page, f"again-{pid}-done")
    if SHOTS:
        page.click("[data-theme-toggle]")
        page.screenshot(path=f"{SHOTS}/terminal-dark.png")
    # Full screen attaches to the same shell.
    page.click("[data-term-full]")
    page.wait_for_selector("[data-term-status][data-state=open]", timeout=15000)
    wait_for_screen(page, f"again-{pid}-done")
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/terminal-full.png")
    assert page.console_errors == []


def test_the_logs_tab_runs_a_command_and_follows_it(page, asgi_live_server, sandbox) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    page.goto(f"{asgi_live_server}/sandboxes/{sandbox['id']}/?tab=logs")
    page.fill("#logs-command", "seq 1 40; echo oops >&2; printf '\\033[32mgreen\\033[0m\\n'")
    page.click("[data-logs-run] button[type=submit]")
    page.wait_for_selector("[data-logs-state][data-state=ok]", timeout=15000)
    assert page.inner_text("[data-logs-state]") == "Exited 0"
    assert page.locator(".log-line").count() == 42
    assert page.inner_text(".log-line.stderr") == "oops"
    assert page.inner_text(".log-line .ansi-fg-2") == "green"
    page.fill("[data-logs-search]", "3")
    page.wait_for_timeout(300)
    assert page.inner_text("[data-logs-matches]") == "13 matches"  # 3, 13, 23 and 30-39
    if SHOTS:
        page.fill("[data-logs-search]", "")
        page.wait_for_timeout(300)
        page.screenshot(path=f"{SHOTS}/logs-light.png")
        page.click("[data-theme-toggle]")
        page.screenshot(path=f"{SHOTS}/logs-dark.png")
    assert page.console_errors == []


def test_the_files_tab_uploads_with_progress_and_browses(page, asgi_live_server, sandbox) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    page.goto(f"{asgi_live_server}/sandboxes/{sandbox['id']}/?tab=files")
    page.wait_for_selector(".files-table")
    page.fill("#new-folder", "reports")
    page.click(".files-mkdir button[type=submit]")
    page.wait_for_selector("text=Created")
    page.set_input_files(
        "[data-files-input]",
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello\n" * 1000}],
    )
    page.wait_for_selector("text=Uploaded 1 file.")
    assert page.locator(".files-table td.mono", has_text="notes.txt").count() == 1
    page.click(".files-table a:has-text('reports/')")
    page.wait_for_selector("text=This folder is empty")
    page.click(".files-crumbs a >> nth=-1")
    page.wait_for_selector(".files-table td:has-text('notes.txt')")
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/files-light.png")
        page.click("[data-theme-toggle]")
        page.screenshot(path=f"{SHOTS}/files-dark.png")
    assert page.console_errors == []


def test_the_log_follow_sticks_only_at_the_bottom_and_counts_new_lines(
    page, asgi_live_server, sandbox
) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    page.goto(f"{asgi_live_server}/sandboxes/{sandbox['id']}/?tab=logs")
    page.fill("#logs-command", "seq 1 200; sleep 2; seq 201 260")
    page.click("[data-logs-run] button[type=submit]")
    deadline = time.monotonic() + 10
    while page.locator(".log-line").count() < 200:
        assert time.monotonic() < deadline
        page.wait_for_timeout(50)
    # At the bottom: it follows.
    assert page.evaluate(
        "(() => { const v = document.querySelector('[data-logs-view]');"
        " return v.scrollTop + v.clientHeight >= v.scrollHeight - 8; })()"
    )
    # Scrolled up: it stays put and counts what arrives.
    page.evaluate("document.querySelector('[data-logs-view]').scrollTop = 0")
    page.wait_for_selector("[data-logs-new]:not([hidden])", timeout=10000)
    assert page.inner_text("[data-logs-new-text]") == "60 new lines"
    assert page.evaluate("document.querySelector('[data-logs-view]').scrollTop") == 0
    page.click("[data-logs-new]")
    assert page.is_hidden("[data-logs-new]")
    assert page.console_errors == []


def test_open_shells_lists_the_tabs_own_shell_once_it_starts_and_drops_it_when_it_ends(
    page, asgi_live_server, sandbox
) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    # Hold the terminal's connection until "Open shells" has been drawn without it.
    held = []

    def hold(route) -> None:
        held.append(route)

    page.route_web_socket(re.compile(r"/ws/sandboxes/.*/terminal/"), hold)
    page.goto(f"{asgi_live_server}/sandboxes/{sandbox['id']}/?tab=terminal")
    page.wait_for_selector("#shells:has-text('No open shells')", timeout=10000)
    deadline = time.monotonic() + 10
    while not held:
        assert time.monotonic() < deadline, "the terminal never connected"
        page.wait_for_timeout(50)
    held[0].connect_to_server()
    page.wait_for_selector("[data-term-status][data-state=open]", timeout=15000)
    # The list was drawn before the shell existed; the connection refreshes it.
    page.wait_for_selector("#shells .shells-table td:has-text('(you)')", timeout=5000)
    assert page.locator("#shells .shells-table tbody tr").count() == 1
    page.click("[data-term-screen]")
    page.keyboard.type("exit 3\n")
    page.wait_for_selector("[data-term-status][data-state=exited]", timeout=10000)
    page.wait_for_selector("#shells:has-text('No open shells')", timeout=5000)
    assert page.console_errors == []
