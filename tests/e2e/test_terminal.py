"""The terminal in a real browser: type, see, lose the connection, find the same shell."""

import os
import re
import time

import pytest

from dashboard.accounts.models import Role
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import sign_in
from tests.sandboxes.conftest import wait_for_state

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Set to a folder to keep screenshots of the terminal in both themes.
SHOTS = os.environ.get("SANDBAR_TEST_SCREENSHOTS", "")


# Every CSP violation the page reports, as the browser's own event (console messages
# can be worded differently by each browser version).
CSP_WATCH = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(event.violatedDirective + " " + (event.blockedURI || "inline"));
});
"""


def screen_text(page) -> str:
    # The WebGL renderer draws on a canvas: the screen is read from xterm.js's buffer.
    return page.evaluate("window.sandbarTerminal.text()")


def open_terminal(page, base: str, sandbox_id: str, query: str = "") -> None:
    page.add_init_script(CSP_WATCH)
    page.goto(f"{base}/sandboxes/{sandbox_id}/?tab=terminal{query}")
    page.wait_for_selector("[data-term-status][data-state=open]", timeout=15000)


def no_overflow(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page scrolls sideways: {width} px"


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
    open_terminal(page, asgi_live_server, sandbox["id"])
    page.click("[data-term-screen]")
    # 24-bit colour: the DOM renderer would style such cells inline, which the CSP
    # forbids; the WebGL renderer paints them, and nothing is patched to let styles in.
    page.keyboard.type("printf '\\033[38;2;255;120;0mtruecolor\\033[0m\\n'\n")
    wait_for_screen(page, "truecolor\n")
    assert page.evaluate("window.sandbarTerminal.renderer()") == "webgl"
    assert page.evaluate("Element.prototype.setAttribute.toString()").endswith("{ [native code] }")
    assert page.evaluate("document.createElement.toString()").endswith("{ [native code] }")
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
    # Its own page attaches to the same shell.
    page.click("[data-term-page]")
    page.wait_for_selector("[data-term-status][data-state=open]", timeout=15000)
    wait_for_screen(page, f"again-{pid}-done")
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/terminal-full.png")
    assert page.evaluate("window.cspViolations") == []
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


def test_on_a_phone_the_extra_keys_quit_vim_and_top_and_nothing_scrolls_sideways(
    page, asgi_live_server, sandbox
) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    page.set_viewport_size({"width": 390, "height": 844})
    open_terminal(page, asgi_live_server, sandbox["id"])
    assert page.is_visible("[data-term-keys]")
    page.wait_for_selector("#shells .shells-table", timeout=10000)
    no_overflow(page)
    page.click("[data-term-screen]")
    page.keyboard.type("vim /tmp/phone.txt\n")
    wait_for_screen(page, "phone.txt")
    page.keyboard.type("ihello-from-phone")
    page.click("[data-key=esc]")  # a phone keyboard has no Esc
    page.keyboard.type(":wq\n")
    page.keyboard.type("cat /tmp/phone.txt; echo vim-$((1+1))-left\n")
    wait_for_screen(page, "vim-2-left")
    page.keyboard.type("top\n")
    wait_for_screen(page, "load average")
    page.click("[data-key=ctrl]")
    assert page.get_attribute("[data-key=ctrl]", "aria-pressed") == "true"
    page.keyboard.type("c")  # sticky Ctrl: this is Ctrl-C
    assert page.get_attribute("[data-key=ctrl]", "aria-pressed") == "false"
    wait_for_screen(page, r"\$\s*\Z")  # top has gone: the prompt is last
    page.keyboard.type("echo top-$((2+2))-left\n")
    wait_for_screen(page, "top-4-left")
    page.click("[data-key=up]")  # the shell's history: the echo again
    page.keyboard.press("Enter")
    wait_for_screen(page, r"top-4-left[\s\S]*top-4-left")
    no_overflow(page)
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/terminal-phone.png", full_page=True)
    assert page.evaluate("window.cspViolations") == []
    assert page.console_errors == []


def test_full_screen_fills_the_screen_and_esc_or_the_button_leaves_it(
    page, asgi_live_server, sandbox
) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    open_terminal(page, asgi_live_server, sandbox["id"])
    page.click("[data-term-full]")
    deadline = time.monotonic() + 5
    full = "document.fullscreenElement === document.querySelector('[data-terminal]')"
    while not page.evaluate(full):
        assert time.monotonic() < deadline, "the terminal never went full screen"
        page.wait_for_timeout(50)
    box = page.locator("[data-terminal]").bounding_box()
    assert box["height"] >= page.evaluate("screen.height") - 1
    assert page.inner_text("[data-term-full]").strip() == "Exit full screen"
    page.click("[data-term-full]")
    deadline = time.monotonic() + 5
    while page.evaluate("document.fullscreenElement !== null"):
        assert time.monotonic() < deadline, "full screen did not end"
        page.wait_for_timeout(50)
    assert page.inner_text("[data-term-full]").strip() == "Full screen"
    assert page.console_errors == []


def test_a_closed_tab_closes_its_shell_a_reload_keeps_it_and_a_kept_one_stays(
    page, asgi_live_server, sandbox, monkeypatch
) -> None:
    from dashboard.terminal import views
    from dashboard.terminal.consumers import pty_id_for
    from dashboard.terminal.models import Shell

    monkeypatch.setattr(views, "LEAVE_GRACE_SECONDS", 2.0)

    def ended(session: str) -> bool:
        return Shell.objects.get(pty_id=pty_id_for(session)).ended_at is not None

    def wait_ended(session: str) -> None:
        deadline = time.monotonic() + 10
        while not ended(session):
            assert time.monotonic() < deadline, "the shell was not closed"
            time.sleep(0.2)

    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    open_terminal(page, asgi_live_server, sandbox["id"])
    first = page.evaluate("window.sandbarTerminal.session()")
    # Its row says "this tab", and names it.
    page.wait_for_selector(f"#shells tr[data-session='{first}'][data-this-tab]", timeout=10000)
    assert "Shell 1" in page.inner_text(f"#shells tr[data-session='{first}']")
    # A reload comes back to the same shell, well within the grace period.
    page.reload()
    page.wait_for_selector("[data-term-status][data-state=open]", timeout=15000)
    assert page.evaluate("window.sandbarTerminal.session()") == first
    time.sleep(3)
    assert not ended(first)
    # Leaving the page (as closing the tab does) closes it after the grace period.
    page.goto(f"{asgi_live_server}/sandboxes/")
    wait_ended(first)
    # Back on the terminal after that: a new shell, not "the shell has ended".
    open_terminal(page, asgi_live_server, sandbox["id"])
    second = page.evaluate("window.sandbarTerminal.session()")
    assert second != first
    # Kept: it outlives the tab.
    page.check("[data-term-keep]")
    page.goto(f"{asgi_live_server}/sandboxes/")
    time.sleep(3.5)
    assert not ended(second)
    assert page.console_errors == []


def test_close_all_mine_ends_the_tabs_shell_too(page, asgi_live_server, sandbox) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    open_terminal(page, asgi_live_server, sandbox["id"])
    page.wait_for_selector("#shells [data-close-mine]", timeout=10000)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#shells [data-close-mine]")
    page.wait_for_selector("[data-term-status][data-state=exited]", timeout=10000)
    page.wait_for_selector("#shells:has-text('No open shells')", timeout=5000)
    assert page.console_errors == []


@pytest.mark.parametrize("where", ["tab", "own page"])
def test_a_remembered_shell_gone_after_a_restart_gives_way_to_a_new_one_and_says_so(
    page, asgi_live_server, daytona_engine, sandbox, where
) -> None:
    def engine(verb: str, state: str) -> None:
        with daytona_engine.client() as api:
            api.post(f"/sandbox/{sandbox['id']}/{verb}").raise_for_status()
        wait_for_state(daytona_engine, sandbox["id"], state)

    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    open_terminal(page, asgi_live_server, sandbox["id"])
    first = page.evaluate("window.sandbarTerminal.session()")
    if where == "own page":
        # The tab's "Own page" link names the shell in the address.
        page.click("[data-term-page]")
        page.wait_for_selector("[data-term-status][data-state=open]", timeout=15000)
        assert f"session={first}" in page.url
    engine("stop", "stopped")
    engine("start", "started")
    page.reload()
    page.wait_for_selector("[data-term-status][data-state=open]", timeout=15000)
    assert page.evaluate("window.sandbarTerminal.session()") != first
    assert "had ended" in page.inner_text("[data-term-note]")
    assert page.is_hidden("[data-term-exit]")
    assert "session=" not in page.url
    page.locator("[data-term-screen]").click()
    page.keyboard.type("echo fresh-$((6*7))\n")
    wait_for_screen(page, "fresh-42")
    assert page.console_errors == []


# The visible controls of the terminal's bar: the top and bottom of each, and its name.
BAR_ITEMS_JS = """
() => [...document.querySelectorAll('.terminal-actions > *')]
  .filter((el) => el.getClientRects().length)
  .map((el) => {
    const r = el.getBoundingClientRect();
    return [r.top, r.bottom, r.right, el.textContent.trim() || el.getAttribute('aria-label')];
  })
"""


@pytest.mark.parametrize("where", ["tab", "own page"])
def test_on_a_phone_the_terminal_bar_keeps_its_buttons_on_one_line(
    page, asgi_live_server, sandbox, where
) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    page.set_viewport_size({"width": 390, "height": 844})
    if where == "tab":
        open_terminal(page, asgi_live_server, sandbox["id"])
    else:
        page.goto(f"{asgi_live_server}/sandboxes/{sandbox['id']}/terminal/")
        page.wait_for_selector("[data-term-status][data-state=open]", timeout=15000)
    items = page.evaluate(BAR_ITEMS_JS)
    assert len(items) == 4, items
    tops = {round(top) for top, _bottom, _right, _name in items}
    assert len(tops) == 1, f"the bar's controls take {len(tops)} lines: {items}"
    assert max(right for _top, _bottom, right, _name in items) <= 390
    # Short on a phone, each still named (icon-only buttons by their aria-label).
    assert all(name for *_, name in items)
    no_overflow(page)
