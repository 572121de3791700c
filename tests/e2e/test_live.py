"""Live pages stay true: they follow the sandbox's state, their times tick, the "Live"
badge says when it is not live and why, and they catch up by themselves when the
connection (to the dashboard or from it to Daytona) comes back."""

import re
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from dashboard.accounts.access import OWNER_LABEL
from dashboard.accounts.models import Role
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import sign_in
from tests.engine_server import EngineServer, start_engine

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LIVE_SOCKET = re.compile(r"/ws/sandboxes/$")
GOING_AWAY = 1001  # what a dropped link looks like that a test can send (1006 cannot be)


def _new_sandbox(engine: EngineServer, owner: str = "mel") -> dict:
    with engine.client() as api:
        body = {"name": f"live-{uuid.uuid4().hex[:8]}", "labels": {OWNER_LABEL: owner}}
        return api.post("/sandbox", json=body).json()


def _api(engine: EngineServer, method: str, path: str) -> None:
    with engine.client() as api:
        api.request(method, path).raise_for_status()


def _badge(page):
    return page.locator("#live-status .live-text")


# -- a tab follows the sandbox's state ----------------------------------------------------

TAB_READY = {
    # What shows that the tab's own script runs, not just that its markup arrived.
    "terminal": "[data-term-status][data-state=open]",
    "logs": "[data-logs] [data-logs-run]",
    "files": "#files table, #files .empty, #files [data-files-drop]",
}


@pytest.mark.parametrize("tab", ["terminal", "logs", "files"])
def test_a_tab_drawn_for_a_stopped_sandbox_becomes_usable_when_it_starts_and_back(
    page, asgi_live_server, daytona_engine, sandbox, tab
) -> None:
    make_user("mel", Role.MEMBER)
    _api(daytona_engine, "POST", f"/sandbox/{sandbox['id']}/stop")
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    page.goto(f"{asgi_live_server}/sandboxes/{sandbox['id']}/?tab={tab}")
    stopped = page.get_by_role("heading", name="The sandbox is stopped")
    stopped.wait_for()
    page.locator("#live-status.on").wait_for(timeout=5000)

    page.click("#sandbox-head button[data-verb=start]")
    page.locator(TAB_READY[tab]).first.wait_for(timeout=15_000)
    assert stopped.count() == 0

    # And the other way, by a change made outside this page.
    _api(daytona_engine, "POST", f"/sandbox/{sandbox['id']}/stop")
    stopped.wait_for(timeout=10_000)
    assert page.locator(TAB_READY[tab]).count() == 0
    assert page.console_errors == []


def _a_shell_opens(page) -> None:
    # The tab remembers its shell, which the stop ended: a new one opens in its place,
    # with no "Shell ended" to click through.
    page.locator(TAB_READY["terminal"]).wait_for(timeout=15_000)
    assert page.is_hidden("[data-term-exit]")


def test_a_terminal_tab_redrawn_by_restarts_runs_one_working_terminal(
    page, asgi_live_server, daytona_engine, sandbox
) -> None:
    make_user("mel", Role.MEMBER)
    _api(daytona_engine, "POST", f"/sandbox/{sandbox['id']}/stop")
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    page.goto(f"{asgi_live_server}/sandboxes/{sandbox['id']}/?tab=terminal")
    page.locator("#live-status.on").wait_for(timeout=5000)
    stopped = page.get_by_role("heading", name="The sandbox is stopped")
    for _ in range(3):
        _api(daytona_engine, "POST", f"/sandbox/{sandbox['id']}/start")
        _a_shell_opens(page)
        _api(daytona_engine, "POST", f"/sandbox/{sandbox['id']}/stop")
        stopped.wait_for(timeout=10_000)
    _api(daytona_engine, "POST", f"/sandbox/{sandbox['id']}/start")
    _a_shell_opens(page)
    page.locator("[data-term-screen]").click()
    page.keyboard.type("echo live-$((6*7))\n")
    # The WebGL renderer draws on a canvas: the screen is read from xterm.js's buffer.
    for _ in range(100):
        if "live-42" in page.evaluate("window.sandbarTerminal.text()"):
            break
        page.wait_for_timeout(100)
    assert "live-42" in page.evaluate("window.sandbarTerminal.text()")
    assert page.locator("[data-terminal]").count() == 1
    assert page.console_errors == []


# -- times tick ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "cell"),
    [("detail", "#facts time"), ("list", "tr[id^=sb-] td time")],
)
def test_a_time_shown_as_now_says_minutes_ago_minutes_later_without_a_reload(
    page, asgi_live_server, daytona_engine, sandbox, where, cell
) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    page.clock.install()
    path = (
        f"/sandboxes/{sandbox['id']}/" if where == "detail" else f"/sandboxes/?q={sandbox['name']}"
    )
    page.goto(f"{asgi_live_server}{path}")
    created = page.locator(cell).first
    assert "minute" not in created.inner_text()
    page.clock.fast_forward("03:10")
    # A row or the facts may be redrawn by a live push meanwhile: the locator finds the new one.
    expect(created).to_have_text("3 minutes ago", timeout=5000)


A_YEAR_MS = 400 * 24 * 3600 * 1000


@pytest.mark.parametrize(
    ("where", "cell", "jump", "said"),
    [
        ("volumes", "#vol-{volume} td time", "03:10", "3 minutes ago"),
        ("snapshots", "tr[id^=snap-] td time", A_YEAR_MS, re.compile("year")),
        ("snapshot", "#snapshot-facts time, dl time", A_YEAR_MS, re.compile("year")),
        ("files", "#files .files-table time", "03:10", "3 minutes ago"),
        ("shells", "#shells tr[data-this-tab] time", "03:10", "3 min"),
    ],
)
def test_times_tick_on_the_snapshots_volumes_files_and_open_shells_pages(
    page, asgi_live_server, daytona_engine, sandbox, where, cell, jump, said
) -> None:
    make_user("mel", Role.ADMIN if where.startswith("snapshot") else Role.MEMBER)
    with daytona_engine.client() as api:
        snapshot = api.get("/snapshots").json()["items"][0]["id"]
        volume = api.post("/volumes", json={"name": f"tick-{uuid.uuid4().hex[:8]}"}).json()["id"]
    try:
        sign_in(page, asgi_live_server, "mel", PASSWORD)
        page.clock.install()
        path = {
            "volumes": "/volumes/",
            "snapshots": "/snapshots/",
            "snapshot": f"/snapshots/{snapshot}/",
            "files": f"/sandboxes/{sandbox['id']}/?tab=files",
            "shells": f"/sandboxes/{sandbox['id']}/?tab=terminal",
        }[where]
        page.goto(f"{asgi_live_server}{path}")
        if where == "files":
            page.fill("#new-folder", "made-now")
            page.click(".files-mkdir button[type=submit]")
        shown = page.locator(cell.format(volume=volume)).first
        shown.wait_for(timeout=15_000)
        assert "year" not in shown.inner_text() and "3 min" not in shown.inner_text()
        page.clock.fast_forward(jump)
        # Lists redrawn meanwhile (a poll, a live push) are found again by the locator.
        expect(shown).to_have_text(said, timeout=5000)
    finally:
        with daytona_engine.client() as api:
            api.delete(f"/volumes/{volume}")


# -- the badge tells the truth, and pages catch up ----------------------------------------


class _Cuttable:
    """The page's live socket, passed through to the real dashboard, that a test can cut
    (as a dropped network would) and keep from coming back until it lets it."""

    def __init__(self, page) -> None:
        self.routes: list = []
        self.blocked = False
        self.attempts = 0
        page.route_web_socket(LIVE_SOCKET, self._handle)

    def _handle(self, route) -> None:
        self.attempts += 1
        if self.blocked:
            route.close(code=GOING_AWAY)
            return
        self.routes.append((route, route.connect_to_server()))

    def cut(self) -> None:
        self.blocked = True
        for route, server in self.routes:
            server.close(code=GOING_AWAY)
            route.close(code=GOING_AWAY)
        self.routes.clear()


@pytest.mark.parametrize("where", ["list", "detail"])
def test_a_page_whose_socket_came_back_shows_what_changed_while_it_was_away(
    page, asgi_live_server, daytona_engine, sandbox, where
) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    link = _Cuttable(page)
    path = (
        f"/sandboxes/{sandbox['id']}/" if where == "detail" else f"/sandboxes/?q={sandbox['name']}"
    )
    state = f"#sb-{sandbox['id']}" if where == "list" else "#sandbox-head"
    page.goto(f"{asgi_live_server}{path}")
    page.locator(f'{state}[data-state="started"]').wait_for()
    page.locator("#live-status.on").wait_for(timeout=5000)

    tick = page.locator(f"#sb-{sandbox['id']} input[name=ids]")
    if where == "list":
        tick.check()
    link.cut()
    # The reason, not just a grey dot.
    expect(_badge(page)).to_have_text(re.compile(r"^Reconnecting: \S"), timeout=5000)
    _api(daytona_engine, "POST", f"/sandbox/{sandbox['id']}/stop")
    page.wait_for_timeout(1500)  # the change is pushed to everyone else meanwhile
    assert page.locator(f'{state}[data-state="started"]').count() == 1

    link.blocked = False
    expect(_badge(page)).to_have_text("Live", timeout=20_000)
    page.locator(f'{state}[data-state="stopped"]').wait_for(timeout=5000)
    if where == "list":  # the rows fetched again keep the reader's ticks
        assert tick.is_checked()
    assert page.console_errors == []


# Records, in the page, when each socket is made and when it closes: the delays the page
# chooses, apart from how long the test's routing takes to refuse a socket.
RECORD_SOCKETS = """
window.socketTimes = [];
const Native = window.WebSocket;
window.WebSocket = function (url, protocols) {
  const socket = new Native(url, protocols);
  window.socketTimes.push(["new", performance.now()]);
  socket.addEventListener("close", () => window.socketTimes.push(["close", performance.now()]));
  return socket;
};
window.WebSocket.prototype = Native.prototype;
Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
"""


def test_a_lost_socket_is_tried_again_after_growing_delays_that_differ_between_pages(
    browser, asgi_live_server, daytona_engine
) -> None:
    make_user("mel", Role.MEMBER)
    delays = []
    for _ in range(2):
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, asgi_live_server, "mel", PASSWORD)
        _Cuttable(page).blocked = True
        page.add_init_script(RECORD_SOCKETS)  # after the route's own WebSocket, around it
        page.goto(f"{asgi_live_server}/sandboxes/")
        for _ in range(150):
            times = page.evaluate("window.socketTimes")
            if len(times) >= 8:
                break
            page.wait_for_timeout(100)
        closes = [t for kind, t in times if kind == "close"]
        news = [t for kind, t in times if kind == "new"][1:]
        delays.append([(made - closed) / 1000 for closed, made in zip(closes, news, strict=False)])
        context.close()
    for first, second, third in delays:
        # 1, 2, 4 s, each drawn within ±25 %.
        assert 0.74 <= first <= 1.26 and 1.49 <= second <= 2.51 and 2.99 <= third <= 5.01, delays
    # Jitter: two pages that lost the server together do not come back in step.
    assert delays[0] != delays[1]


def test_a_socket_closed_by_signing_out_says_offline_and_why_and_is_not_retried(
    page, asgi_live_server, daytona_engine
) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    opened: list = []
    page.on("websocket", lambda ws: LIVE_SOCKET.search(ws.url) and opened.append(ws))
    page.goto(f"{asgi_live_server}/sandboxes/")
    page.locator("#live-status.on").wait_for(timeout=5000)
    other = page.context.new_page()
    other.goto(f"{asgi_live_server}/account/")
    other.click("form[action$='/sign-out/'] button[type=submit]")
    expect(_badge(page)).to_have_text("Offline: You signed out.", timeout=5000)
    page.wait_for_timeout(3000)  # longer than the first two retry delays
    assert len(opened) == 1


# -- Daytona away and back -----------------------------------------------------------------


@pytest.fixture(scope="module")
def own_engine(tmp_path_factory) -> Iterator[EngineServer]:
    """An engine of this module's own, which its tests stop and start again."""
    server = start_engine(tmp_path_factory.mktemp("live-engine"))
    yield server
    server.stop()


@pytest.fixture
def stoppable_daytona(own_engine, settings) -> Iterator[EngineServer]:
    settings.DAYTONA_API_URL = own_engine.api_url
    settings.DAYTONA_API_KEY = own_engine.api_key
    yield own_engine
    if own_engine.process is None or own_engine.process.poll() is not None:
        own_engine.start()


def test_with_daytona_away_the_badge_says_so_and_both_pages_recover_when_it_returns(
    browser, page, asgi_live_server, stoppable_daytona
) -> None:
    make_user("mel", Role.MEMBER)
    made = _new_sandbox(stoppable_daytona)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    page.goto(f"{asgi_live_server}/sandboxes/")
    detail = page.context.new_page()
    detail.goto(f"{asgi_live_server}/sandboxes/{made['id']}/")
    for tab in (page, detail):
        tab.locator("#live-status.on").wait_for(timeout=5000)

    stoppable_daytona.stop()
    for tab in (page, detail):
        expect(_badge(tab)).to_have_text(re.compile("^Daytona not answering"), timeout=20_000)
    # A page opened meanwhile is told too, not shown a green "Live".
    late = page.context.new_page()
    late.goto(f"{asgi_live_server}/sandboxes/")
    expect(_badge(late)).to_have_text(re.compile("^Daytona not answering"), timeout=10_000)

    stoppable_daytona.start()
    other = _new_sandbox(stoppable_daytona)
    for tab in (page, detail, late):
        expect(_badge(tab)).to_have_text("Live", timeout=20_000)
    page.locator(f"#sb-{other['id']}").wait_for(timeout=10_000)
    detail.locator("#sandbox-head h1", has_text=made["name"]).wait_for()
    _api(stoppable_daytona, "POST", f"/sandbox/{made['id']}/stop")
    detail.locator('#sandbox-head[data-state="stopped"]').wait_for(timeout=10_000)
    for sandbox_id in (made["id"], other["id"]):
        _api(stoppable_daytona, "DELETE", f"/sandbox/{sandbox_id}")
