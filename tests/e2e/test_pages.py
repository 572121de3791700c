"""Every main page at phone, tablet, laptop and desktop widths, in both themes.

For each page (as each role where the page differs) the browser is resized and its
colour scheme switched in place, without reloading: at every width x theme the
document must not scroll sideways and no element may overflow its box unless it is
one meant to scroll (the terminal, the log view) or clips its text on purpose (an
ellipsis). axe-core then checks the page at laptop width in the light theme, the
system's dark theme and the app's own dark switch, and fails on serious or critical
violations (contrast, names, roles). Screenshots of every combination go to
$SANDBAR_TEST_ARTIFACTS (default: a temporary folder), to be looked at.
"""

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.contrib.auth.tokens import default_token_generator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from dashboard.accounts.access import OWNER_LABEL
from dashboard.accounts.models import Role
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WIDTHS = (390, 900, 1366, 1920)
HEIGHT = {390: 844, 900: 1000, 1000: 800, 1280: 800, 1366: 768, 1920: 1080}
# Checked for overflow too, without screenshots: the narrowest screen with the sidebar
# open, and the narrowest common laptop.
CHECKED_ONLY = (1000, 1280)
THEMES = ("light", "dark")
AXE = Axe()
ARTIFACTS = Path(
    os.environ.get("SANDBAR_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "sandbar-pages"
)

# Finds what sticks out sideways. Scroll containers are fine when marked as meant to
# scroll; an element clipping its own text with an ellipsis is fine; anything else
# wider inside than its box is content cut off or spilling over its neighbours. (The
# terminal's panel clips its screen while xterm.js fits itself after a resize.)
OVERFLOW_JS = """
() => {
  const root = document.documentElement;
  const found = [];
  if (root.scrollWidth > root.clientWidth) {
    found.push(`document: ${root.scrollWidth}px in ${root.clientWidth}px`);
  }
  const meantToScroll = (el) => el.closest(
    ".terminal-panel, .logs-view, [data-scroll-x], pre, textarea, .visually-hidden, .dropdown-menu"
  );
  for (const el of document.body.querySelectorAll("*")) {
    if (el.scrollWidth <= el.clientWidth + 1 || el.clientWidth === 0) continue;
    if (meantToScroll(el)) continue;
    const style = getComputedStyle(el);
    if (style.display === "inline" || style.position === "fixed") continue;
    if (style.textOverflow === "ellipsis") continue;
    if (el.getClientRects().length === 0) continue;  // not shown
    const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
      (el.className && typeof el.className === "string"
        ? "." + el.className.trim().split(/\\s+/).join(".") : "");
    const sizes = `${el.scrollWidth}px in ${el.clientWidth}px`;
    found.push(`${name}: ${sizes} (overflow-x ${style.overflowX})`);
  }
  return found;
}
"""


@pytest.fixture(scope="module")
def made(engine) -> Iterator[dict]:
    """What the pages show: sandboxes with long names and labels, a volume, a snapshot.

    Made once for the module: every page test only looks.
    """
    tag = uuid.uuid4().hex[:6]
    with engine.client() as api:
        labels = {OWNER_LABEL: "ada", "team": "web-platform", "env": "staging"}
        sandboxes = [
            api.post(
                "/sandbox",
                json={
                    "name": f"pages-{tag}-build-runner-{n}",
                    "labels": labels,
                    "env": {"NODE_ENV": "production", "DATABASE_URL": "postgres://app@db/app"},
                },
            ).json()
            for n in range(2)
        ]
        api.post(f"/sandbox/{sandboxes[1]['id']}/stop").raise_for_status()
        volume = api.post("/volumes", json={"name": f"pages-{tag}-cache"}).json()
        snapshot = api.get("/snapshots").json()["items"][0]
    yield {"sandbox": sandboxes[0], "snapshot": snapshot, "tag": tag}
    with engine.client() as api:
        for sandbox in sandboxes:
            api.delete(f"/sandbox/{sandbox['id']}")
        api.delete(f"/volumes/{volume['id']}")


@pytest.fixture
def world(made, daytona_engine) -> dict:
    return made


def sandbox_page(tab: str = "") -> str:
    return "/sandboxes/{sandbox}/" + (f"?tab={tab}" if tab else "")


ADMIN_PAGES = {
    "sandboxes": "/sandboxes/",
    "sandbox-overview": sandbox_page(),
    "sandbox-terminal": sandbox_page("terminal"),
    "sandbox-logs": sandbox_page("logs"),
    "sandbox-files": sandbox_page("files"),
    "sandbox-new": "/sandboxes/new/",
    "snapshots": "/snapshots/",
    "snapshot": "/snapshots/{snapshot}/",
    "snapshot-new": "/snapshots/new/",
    "volumes": "/volumes/",
    "limits": "/limits/",
    "audit": "/audit/",
    "team": "/team/",
    "account": "/account/",
    "settings": "/settings/",
    "not-found": "/no-such-page/",
}
# Pages whose content differs for a viewer (no actions, fewer columns, fewer entries).
VIEWER_PAGES = ("sandboxes", "sandbox-overview", "sandbox-terminal", "team", "audit")
SIGNED_OUT_PAGES = {"sign-in": "/sign-in/", "not-found-signed-out": "/no-such-page/"}


SETTLE_JS = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


def look(page, name: str) -> list[str]:
    """Every width x theme of the open page: its overflow problems, and screenshots."""
    problems = []
    # Motion off: the phone drawer slides away when the width drops, and the screenshot
    # would catch it halfway.
    page.emulate_media(reduced_motion="reduce")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": HEIGHT[width]})
        for theme in THEMES:
            page.emulate_media(color_scheme=theme)
            page.evaluate(SETTLE_JS)
            problems += [f"{width}px {theme}: {p}" for p in page.evaluate(OVERFLOW_JS)]
            page.screenshot(path=str(ARTIFACTS / f"{name}-{width}-{theme}.png"), full_page=True)
    page.emulate_media(color_scheme="light")
    for width in CHECKED_ONLY:
        page.set_viewport_size({"width": width, "height": HEIGHT[width]})
        page.evaluate(SETTLE_JS)
        problems += [f"{width}px: {p}" for p in page.evaluate(OVERFLOW_JS)]
    return problems


def accessibility(page, name: str) -> list[str]:
    """axe-core's serious and critical findings at laptop width, light and dark.

    Dark is the app's own switch: it shares its colours with the system's dark
    theme, and adds its own rules on top.
    """
    page.set_viewport_size({"width": 1366, "height": 768})
    page.emulate_media(color_scheme="light")
    page.evaluate(AXE.axe_script)
    found = []
    for theme in THEMES:
        page.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
        page.evaluate(SETTLE_JS)
        results = page.evaluate("axe.run({resultTypes: ['violations']})")
        for violation in results["violations"]:
            if violation["impact"] in ("serious", "critical"):
                targets = [", ".join(node["target"]) for node in violation["nodes"][:3]]
                found.append(f"{theme}: {violation['id']} ({violation['help']}) {targets}")
    page.evaluate("delete document.documentElement.dataset.theme")
    return found


def check_pages(page, base_url: str, pages: dict[str, str], role: str) -> None:
    """Every page for one signed-in role (or none); all problems reported at once."""
    problems = []
    for name, path in pages.items():
        page.console_errors.clear()
        response = page.goto(base_url + path)
        page.wait_for_load_state("networkidle")
        expected = 404 if name.startswith("not-found") else 200
        if response.status != expected:
            problems.append(f"{name}: HTTP {response.status}")
            continue
        found = look(page, f"{role}-{name}") + accessibility(page, f"{role}-{name}")
        problems += [f"{name} ({path}) {p}" for p in found]
        # The browser reports a page answered with 404 as an error; that one is the point.
        problems += [
            f"{name} ({path}) console: {error}"
            for error in page.console_errors
            if not (expected == 404 and "status of 404" in error)
        ]
    assert problems == [], "\n".join(problems)


@pytest.fixture(scope="module", autouse=True)
def _artifacts() -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


def paths(names, world: dict) -> dict[str, str]:
    ids = {"sandbox": world["sandbox"]["id"], "snapshot": world["snapshot"]["id"]}
    return {name: ADMIN_PAGES[name].format(**ids) for name in names}


# One test a page: each page's widths, themes and axe take about 10 s on a quiet machine,
# and the whole set in one test outgrew the per-test timeout on a busy one.
@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_every_page_of_an_admin_fits_every_width_and_theme(
    page, asgi_live_server, world, name
) -> None:
    make_user("ada", Role.ADMIN, first_name="Ada", last_name="Lovelace-Byron")
    sign_in(page, asgi_live_server, "ada", PASSWORD)
    check_pages(page, asgi_live_server, paths([name], world), "admin")


def test_the_pages_a_viewer_sees_differently_fit_every_width_and_theme(
    page, asgi_live_server, world
) -> None:
    make_user("vic", Role.VIEWER)
    sign_in(page, asgi_live_server, "vic", PASSWORD)
    check_pages(page, asgi_live_server, paths(VIEWER_PAGES, world), "viewer")


def test_the_signed_out_pages_fit_every_width_and_theme(page, asgi_live_server) -> None:
    invited = make_user("ivy", Role.MEMBER)
    uid = urlsafe_base64_encode(force_bytes(invited.pk))
    invitation = f"/set-password/{uid}/{default_token_generator.make_token(invited)}/"
    pages = {**SIGNED_OUT_PAGES, "invitation": invitation}
    check_pages(page, asgi_live_server, pages, "signed-out")


# The colours that matter in the dark theme, each as the browser computed them.
DARK_COLOURS_JS = """
() => {
  const colour = (el, prop) => getComputedStyle(el)[prop];
  const text = (el) => colour(el, "color");
  const probe = document.createElement("span");
  probe.style.color = "var(--muted)";
  document.body.append(probe);
  const muted = colour(probe, "color");
  probe.remove();
  const primary = document.querySelector("a.btn.primary") || document.body;
  return {
    primaryText: colour(primary, "color"),
    primaryBackground: colour(primary, "backgroundColor"),
    muted,
    nav: [...document.querySelectorAll(".nav a:not([aria-current])")].map(text),
    tabs: [...document.querySelectorAll(".tabs a:not([aria-current])")].map(text),
  };
}
"""


@pytest.mark.parametrize("route", ["system", "switch"])
def test_in_the_dark_theme_link_buttons_keep_their_text_and_the_sidebar_and_tabs_stay_muted(
    route, page, asgi_live_server, world
) -> None:
    make_user("ada", Role.ADMIN)
    sign_in(page, asgi_live_server, "ada", PASSWORD)
    page.emulate_media(color_scheme="dark" if route == "system" else "light")
    if route == "switch":
        page.click("[data-theme-toggle]")
    page.goto(f"{asgi_live_server}/sandboxes/")
    colours = page.evaluate(DARK_COLOURS_JS)
    assert page.locator("a.btn.primary").inner_text() == "New sandbox"
    assert colours["primaryText"] != colours["primaryBackground"]
    assert set(colours["nav"]) == {colours["muted"]}
    page.goto(f"{asgi_live_server}/sandboxes/{world['sandbox']['id']}/")
    tabs = page.evaluate(DARK_COLOURS_JS)["tabs"]
    assert len(tabs) == page.locator(".tabs a").count() - 1 >= 3
    assert set(tabs) == {colours["muted"]}


# Where each row's actions are, against the table's box and the window.
ROW_ACTIONS_JS = """
() => {
  const wrap = document.querySelector(".table-wrap");
  const box = wrap.getBoundingClientRect();
  return {
    wrap: [wrap.scrollWidth, wrap.clientWidth],
    right: Math.min(box.right, window.innerWidth),
    actions: [...document.querySelectorAll("tr[data-sandbox-id] [data-verb=delete]")]
      .map(b => b.getBoundingClientRect()).map(r => [r.left, r.right]),
  };
}
"""


def test_the_sandboxes_table_fits_every_width_from_a_tablet_up_with_its_actions_whole(
    page, asgi_live_server, world
) -> None:
    make_user("ada", Role.ADMIN)
    sign_in(page, asgi_live_server, "ada", PASSWORD)
    page.goto(f"{asgi_live_server}/sandboxes/")
    # Every 40 px, and either side of each breakpoint of the table and the sidebar.
    edges = (641, 799, 800, 900, 901, 1099, 1100, 1249, 1250, 1559, 1560, 1679, 1680)
    for width in sorted({*range(680, 1921, 40), *edges}):
        page.set_viewport_size({"width": width, "height": 800})
        page.evaluate(SETTLE_JS)
        seen = page.evaluate(ROW_ACTIONS_JS)
        scroll, client = seen["wrap"]
        assert scroll <= client, f"{width}px: the table is {scroll}px in {client}px"
        assert len(seen["actions"]) == 2
        for left, right in seen["actions"]:
            assert 0 <= left < right <= seen["right"], f"{width}px: Delete cut at {right}"


def test_on_a_phone_the_sandboxes_are_cards_with_their_actions_and_the_filters_fold(
    page, asgi_live_server, world
) -> None:
    make_user("ada", Role.ADMIN)
    sign_in(page, asgi_live_server, "ada", PASSWORD)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{asgi_live_server}/sandboxes/")
    seen = page.evaluate(ROW_ACTIONS_JS)
    assert seen["wrap"][0] <= seen["wrap"][1]
    for left, right in seen["actions"]:
        assert 0 <= left < right <= 390
    # The rows start on the first screen: the folded filters are one line high.
    assert page.locator("#filters").bounding_box()["height"] < 100
    assert page.locator("tr[data-sandbox-id]").first.bounding_box()["y"] < 600
    assert page.locator("#id_owner").is_hidden()
    page.click("#filters summary.filters-toggle")
    assert page.locator("#id_owner").is_visible()
    assert page.locator("#filters details.filters-fold").get_attribute("open") is not None


def test_the_filters_fold_and_unfold_without_javascript(browser, asgi_live_server, world) -> None:
    make_user("ada", Role.ADMIN)
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        sign_in(page, asgi_live_server, "ada", PASSWORD)
        page.goto(f"{asgi_live_server}/sandboxes/")
        assert page.locator("#id_q").is_visible()
        assert page.locator("#id_owner").is_hidden()
        page.click("#filters summary.filters-toggle")
        assert page.locator("#id_owner").is_visible()
        # From a tablet up every filter shows, folded or not, with no toggle to press.
        page.click("#filters summary.filters-toggle")
        assert page.locator("#id_owner").is_hidden()
        for width in (900, 1366):
            page.set_viewport_size({"width": width, "height": 800})
            assert page.locator("#id_owner").is_visible()
            assert page.locator("#id_sort").is_visible()
            assert page.locator("#filters summary.filters-toggle").is_hidden()
    finally:
        context.close()
