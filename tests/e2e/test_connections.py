"""The header's connection switcher and the connections settings pages, in Chromium.

The second connection is a Connection row aimed at the same embedded engine under
another name, so switching to it changes what the header says, and nothing else.
Screenshots go where the page suite puts its own ($SANDBAR_TEST_ARTIFACTS).
"""

import pytest

from dashboard.accounts.models import Role
from dashboard.connections.models import Connection
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import sign_in
from tests.e2e.test_pages import (
    ARTIFACTS,
    HEIGHT,
    OVERFLOW_JS,
    SETTLE_JS,
    THEMES,
    WIDTHS,
    accessibility,
    look,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SECOND = "staging-engine-eu-west"
SUMMARY = ".connection-switch > summary"


@pytest.fixture
def second(daytona_engine) -> Connection:
    connection = Connection(name=SECOND, api_url=daytona_engine.api_url)
    connection.set_secret(daytona_engine.api_key)
    connection.save()
    return connection


@pytest.fixture
def admin_tab(page, asgi_live_server, second):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    make_user("ada", Role.ADMIN, first_name="Ada", last_name="Lovelace-Byron")
    sign_in(page, asgi_live_server, "ada", PASSWORD)
    return page


def open_switcher(page) -> None:
    page.click(SUMMARY)
    page.wait_for_selector("#connection-switch", state="visible")


def header_name(page) -> str:
    return page.inner_text(".connection-switch .connection-name").strip()


def test_an_admin_switches_to_a_second_connection_by_keyboard_and_back(
    admin_tab, asgi_live_server, second
) -> None:
    page = admin_tab
    page.goto(f"{asgi_live_server}/sandboxes/")
    assert header_name(page) == "Default"

    page.focus(SUMMARY)
    page.keyboard.press("Enter")
    page.wait_for_selector("#connection-switch", state="visible")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "connection-switch"
    page.select_option("#connection-switch", label=SECOND)
    page.keyboard.press("Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_load_state("networkidle")
    assert header_name(page) == SECOND
    assert f"Now using {SECOND}." in page.inner_text("#toasts")

    page.goto(f"{asgi_live_server}/sandboxes/")
    assert header_name(page) == SECOND
    open_switcher(page)
    assert page.eval_on_selector("#connection-switch", "s => s.selectedOptions[0].text") == SECOND
    page.select_option("#connection-switch", label="Default")
    with page.expect_navigation():
        page.click(".connection-menu button[type=submit]")
    assert header_name(page) == "Default"
    assert page.console_errors == []


def test_the_open_switcher_fits_every_width_and_theme_and_passes_axe(
    admin_tab, asgi_live_server
) -> None:
    page = admin_tab
    page.goto(f"{asgi_live_server}/sandboxes/")
    open_switcher(page)
    page.emulate_media(reduced_motion="reduce")
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": HEIGHT[width]})
        for theme in THEMES:
            page.emulate_media(color_scheme=theme)
            page.evaluate(SETTLE_JS)
            problems += [f"{width}px {theme}: {p}" for p in page.evaluate(OVERFLOW_JS)]
            box = page.locator(".connection-panel").bounding_box()
            assert box is not None, "the panel is not shown"
            if box["x"] < 0 or box["x"] + box["width"] > width:
                problems.append(f"{width}px: the panel spans {box['x']}..{box['x'] + box['width']}")
            page.screenshot(
                path=str(ARTIFACTS / f"switcher-{width}-{theme}.png"),
                clip={"x": 0, "y": 0, "width": width, "height": 260},
            )
    problems += accessibility(page, "switcher")
    assert problems == [], "\n".join(problems)
    assert page.console_errors == []


def test_the_connections_pages_fit_every_width_and_theme_and_pass_axe(
    admin_tab, asgi_live_server, second
) -> None:
    page = admin_tab
    problems = []
    page.goto(f"{asgi_live_server}/settings/connections/")
    assert SECOND in page.inner_text("main")
    problems += look(page, "connections-list") + accessibility(page, "connections-list")

    page.goto(f"{asgi_live_server}/settings/connections/new/")
    page.fill("#id_name", "broken")
    page.fill("#id_api_url", "ftp://daytona.example.invalid")
    page.fill("#id_secret", "k" * 16)
    with page.expect_navigation():
        page.click("form.card button[type=submit]")
    assert page.locator(".field-error").count() >= 1
    problems += look(page, "connections-add-error") + accessibility(page, "connections-add-error")

    page.goto(f"{asgi_live_server}/settings/connections/{second.pk}/")
    page.click("#verdict >> xpath=preceding-sibling::form[1] >> button")
    page.wait_for_selector("#verdict .alert")
    assert page.get_attribute("#verdict .alert", "class") == "alert alert-success"
    problems += look(page, "connections-test") + accessibility(page, "connections-test")
    assert problems == [], "\n".join(problems)
    # The form with a field error is answered 400, which the browser logs; that one is the point.
    assert [e for e in page.console_errors if "status of 400" not in e] == []


def test_the_switcher_closes_on_escape_and_on_a_click_elsewhere(admin_tab, asgi_live_server):
    page = admin_tab
    page.goto(f"{asgi_live_server}/sandboxes/")
    is_open = "document.querySelector('.connection-switch').open"
    open_switcher(page)
    page.focus("#connection-switch")
    page.keyboard.press("Escape")
    assert page.evaluate(is_open) is False
    # Focus goes back to the button that opened it, not to the top of the page.
    assert page.evaluate("document.activeElement.matches('.connection-switch > summary')")
    open_switcher(page)
    page.click("main h1")
    assert page.evaluate(is_open) is False
    assert page.console_errors == []
