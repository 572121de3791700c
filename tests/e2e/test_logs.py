"""The Logs tab in a real browser: a reload finds the running command again, and Stop
ends it."""

import time

import pytest

from dashboard.accounts.models import Role
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def wait_lines(page, count: int, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while page.locator(".log-line").count() < count:
        assert time.monotonic() < deadline, f"fewer than {count} lines arrived"
        page.wait_for_timeout(50)


def test_a_reload_during_a_run_follows_the_same_command_again(
    page, asgi_live_server, sandbox
) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    page.goto(f"{asgi_live_server}/sandboxes/{sandbox['id']}/?tab=logs")
    command = "for i in $(seq 1 8); do echo tick-$i; sleep 0.5; done"
    page.fill("#logs-command", command)
    page.click("[data-logs-run] button[type=submit]")
    wait_lines(page, 2)
    page.reload()
    # Not "No command yet": the same command, from its first line, still live.
    page.wait_for_selector("[data-logs-title]:has-text('tick-')", timeout=10000)
    assert page.inner_text("[data-logs-title]") == f"$ {command}"
    page.wait_for_selector("[data-logs-state][data-state=ok]", timeout=15000)
    assert page.inner_text("[data-logs-state]") == "Exited 0"
    assert [page.inner_text(f".log-line >> nth={i}") for i in (0, 7)] == ["tick-1", "tick-8"]
    assert page.locator(".log-line").count() == 8
    assert page.console_errors == []


def test_stop_ends_a_running_command(page, asgi_live_server, sandbox) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    page.goto(f"{asgi_live_server}/sandboxes/{sandbox['id']}/?tab=logs")
    assert page.is_hidden("[data-logs-stop]")
    page.fill("#logs-command", "echo started; sleep 120; echo never")
    page.click("[data-logs-run] button[type=submit]")
    wait_lines(page, 1)
    page.click("[data-logs-stop]")
    page.wait_for_selector("[data-logs-state]:has-text('Stopped')", timeout=10000)
    assert page.is_hidden("[data-logs-stop]")
    assert "never" not in page.inner_text("[data-logs-view]")
    # A new command runs at once (nothing left queued behind the killed one).
    page.fill("#logs-command", "echo after-stop")
    page.click("[data-logs-run] button[type=submit]")
    page.wait_for_selector("[data-logs-state][data-state=ok]", timeout=15000)
    assert page.inner_text(".log-line") == "after-stop"
    assert page.console_errors == []


# Counts the document click listeners logs.js adds, by the script that adds them.
COUNT_LISTENERS = """
window.logsClickListeners = 0;
const addListener = EventTarget.prototype.addEventListener;
EventTarget.prototype.addEventListener = function (type, listener, options) {
  if (this === document && type === "click" && (new Error().stack || "").includes("/js/logs.js")) {
    window.logsClickListeners += 1;
  }
  return addListener.call(this, type, listener, options);
};
"""


def test_the_logs_tab_redrawn_by_a_restart_runs_its_script_once_over(
    page, asgi_live_server, daytona_engine, sandbox
) -> None:
    def engine(verb: str) -> None:
        with daytona_engine.client() as api:
            api.post(f"/sandbox/{sandbox['id']}/{verb}").raise_for_status()

    make_user("mel", Role.MEMBER)
    page.add_init_script(COUNT_LISTENERS)
    engine("stop")
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    page.goto(f"{asgi_live_server}/sandboxes/{sandbox['id']}/?tab=logs")
    stopped = page.get_by_role("heading", name="The sandbox is stopped")
    stopped.wait_for()
    page.locator("#live-status.on").wait_for(timeout=5000)
    # Each start draws the tab again and loads logs.js again: twice here.
    for verb in ("start", "stop", "start"):
        engine(verb)
        if verb == "stop":
            stopped.wait_for(timeout=10_000)
        else:
            page.locator("[data-logs] [data-logs-run]").wait_for(timeout=15_000)
    assert page.evaluate("window.logsClickListeners") == 1

    page.fill("#logs-command", "echo once")
    page.click("[data-logs-run] button[type=submit]")
    page.wait_for_selector("[data-logs-state][data-state=ok]", timeout=15000)
    page.click("#commands [data-logs-follow][data-text='echo once']")
    page.wait_for_selector("[data-logs-state][data-state=ok]", timeout=15000)
    assert page.locator(".log-line").all_inner_texts() == ["once"]
    assert page.console_errors == []
