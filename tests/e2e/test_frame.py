import pytest

from dashboard.accounts.models import Role
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PAGES = [
    "/sandboxes/",
    "/snapshots/",
    "/volumes/",
    "/limits/",
    "/audit/",
    "/team/",
    "/settings/",
    "/account/",
]


def test_an_admin_signs_in_and_every_page_loads_without_a_csp_violation(
    page, asgi_live_server
) -> None:
    make_user("ada", Role.ADMIN)
    sign_in(page, asgi_live_server, "ada", PASSWORD)
    assert page.url.endswith("/sandboxes/")
    for path in PAGES:
        response = page.goto(asgi_live_server + path)
        page.wait_for_load_state("networkidle")
        assert response.status == 200, path
        assert page.evaluate("typeof window.htmx") == "object", path
    assert page.console_errors == []


def test_the_theme_switch_is_remembered_across_pages(page, asgi_live_server) -> None:
    make_user("ada", Role.ADMIN)
    sign_in(page, asgi_live_server, "ada", PASSWORD)
    start = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.click("[data-theme-toggle]")
    switched = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert switched != start
    page.goto(asgi_live_server + "/audit/")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == switched


def test_a_role_change_through_htmx_swaps_only_the_team_table(page, asgi_live_server) -> None:
    make_user("ada", Role.ADMIN)
    mel = make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "ada", PASSWORD)
    page.goto(asgi_live_server + "/team/")
    page.select_option(f"#role-{mel.pk}", "viewer")
    page.wait_for_function(f"document.querySelector('#role-{mel.pk}').value === 'viewer'")
    page.wait_for_load_state("networkidle")
    mel.refresh_from_db()
    assert mel.role == Role.VIEWER
    assert page.console_errors == []


def test_a_wrong_password_shows_the_message_in_the_browser(page, asgi_live_server) -> None:
    make_user("ada", Role.ADMIN)
    sign_in(page, asgi_live_server, "ada", "not-it")
    assert "do not match" in page.inner_text(".alert-error")


def test_on_a_phone_the_search_is_an_icon_until_used_then_spans_the_bar(
    page, asgi_live_server
) -> None:
    make_user("ada", Role.ADMIN)
    page.set_viewport_size({"width": 390, "height": 800})
    sign_in(page, asgi_live_server, "ada", PASSWORD)

    def search_width() -> float:
        return page.evaluate("document.querySelector('.global-search').offsetWidth")

    # Folded: no room taken that would squeeze the placeholder to "Fin…".
    assert search_width() < 48
    page.screenshot(path="/tmp/sandbar-pages/phone-search-folded.png")
    page.click(".search-label")
    assert page.evaluate("document.activeElement.id") == "global-search"
    assert search_width() > 300
    page.screenshot(path="/tmp/sandbar-pages/phone-search-open.png")
    page.keyboard.type("e2e")
    assert page.input_value("#global-search") == "e2e"
    assert page.console_errors == []
