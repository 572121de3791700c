"""In the browser: keyboard shortcuts, forms that follow their choices, masked env values."""

import uuid

import pytest

from dashboard.accounts.models import Role
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def signed_in(page, asgi_live_server, daytona_engine):
    make_user("ada", Role.ADMIN)
    sign_in(page, asgi_live_server, "ada", PASSWORD)
    return page


def test_slash_focuses_the_pages_own_search(signed_in, asgi_live_server) -> None:
    page = signed_in
    page.goto(f"{asgi_live_server}/volumes/")
    page.locator("main").click(position={"x": 5, "y": 5})
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "id_q"
    page.goto(f"{asgi_live_server}/limits/")  # no search of its own: the top bar's
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "global-search"
    page.goto(f"{asgi_live_server}/audit/")  # its own text filter
    page.locator("main").click(position={"x": 5, "y": 5})
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "id_q"
    assert page.console_errors == []


def test_g_s_and_g_n_go_to_the_sandboxes_and_the_new_sandbox_form(
    signed_in, asgi_live_server
) -> None:
    page = signed_in
    page.goto(f"{asgi_live_server}/volumes/")
    page.keyboard.press("g")
    page.keyboard.press("s")
    page.wait_for_url(f"{asgi_live_server}/sandboxes/")
    page.keyboard.press("g")
    page.keyboard.press("n")
    page.wait_for_url(f"{asgi_live_server}/sandboxes/new/")
    assert page.console_errors == []


def test_keys_typed_into_a_field_are_left_alone(signed_in, asgi_live_server) -> None:
    page = signed_in
    page.goto(f"{asgi_live_server}/volumes/")
    page.click("#id_q")
    page.keyboard.type("g s /?")
    assert page.input_value("#id_q") == "g s /?"
    assert page.url.startswith(f"{asgi_live_server}/volumes/")
    assert page.locator("#shortcuts-dialog[open]").count() == 0


def test_question_mark_lists_the_shortcuts_and_escape_closes_it(
    signed_in, asgi_live_server
) -> None:
    page = signed_in
    page.goto(f"{asgi_live_server}/sandboxes/")
    page.keyboard.press("?")
    dialog = page.locator("#shortcuts-dialog[open]")
    dialog.wait_for()
    text = dialog.inner_text()
    for words in ("Go to sandboxes", "New sandbox", "Search this page"):
        assert words in text
    assert dialog.evaluate("d => getComputedStyle(d).borderRadius") == "12px"  # styled
    page.keyboard.press("Escape")
    page.locator("#shortcuts-dialog:not([open])").wait_for(state="attached")
    assert page.console_errors == []


def test_the_snapshot_source_is_labelled_for_the_chosen_kind(signed_in, asgi_live_server) -> None:
    page = signed_in
    page.goto(f"{asgi_live_server}/snapshots/new/")
    assert page.locator("label[for=id_source]").inner_text() == "Directory"
    page.select_option("#id_kind", "debian")
    assert page.locator("label[for=id_source]").inner_text() == "Debian suite"
    assert "bookworm" in page.locator("#id_source_helptext").inner_text()
    page.select_option("#id_kind", "sandbox")
    assert "started or stopped" in page.locator("#id_source_helptext").inner_text()
    # Offered because this engine pulls images (the host check has skopeo and umoci).
    page.select_option("#id_kind", "image")
    assert page.locator("label[for=id_source]").inner_text() == "Image"
    assert "python:3.12-slim" in page.locator("#id_source_helptext").inner_text()
    assert page.console_errors == []


def test_a_picked_volume_fills_an_empty_mount_path_and_a_copied_row_starts_clean(
    signed_in, asgi_live_server, daytona_engine
) -> None:
    page = signed_in
    name = f"e2e-vol-{uuid.uuid4().hex[:6]}"
    with daytona_engine.client() as api:
        volume = api.post("/volumes", json={"name": name}).json()
    try:
        page.goto(f"{asgi_live_server}/sandboxes/new/")
        # The first row's path is a value; a refused path is marked on its row.
        assert page.input_value("input[name=volume_path]") == "/home/daytona/volume"
        page.select_option("select[name=volume_id]", volume["id"])
        page.fill("input[name=volume_path]", "relative")
        page.click("#create-form button[type=submit]")
        page.locator("input[name=volume_path][aria-invalid=true]").wait_for()
        # "Add volume" copies the last row: the copy carries no error and fills its path.
        page.click("[data-kv-add=volume]")
        rows = page.locator(".volume-row")
        assert rows.count() == 2
        second = rows.nth(1)
        assert second.locator(".field-error").count() == 0
        assert second.locator("[aria-invalid]").count() == 0
        second.locator("select").select_option(volume["id"])
        assert second.locator("input[name=volume_path]").input_value() == f"/home/daytona/{name}"
        assert page.console_errors == []
    finally:
        with daytona_engine.client() as api:
            api.delete(f"/volumes/{volume['id']}")


def test_env_values_stay_masked_until_shown(page, asgi_live_server, daytona_engine) -> None:
    from dashboard.daytona.labels import OWNER_LABEL

    make_user("mel", Role.MEMBER)
    secret = "tok-" + uuid.uuid4().hex[:10]
    with daytona_engine.client() as api:
        body = {"name": f"e2e-env-{uuid.uuid4().hex[:6]}", "labels": {OWNER_LABEL: "mel"}}
        sandbox = api.post("/sandbox", json={**body, "env": {"API_TOKEN": secret}}).json()
    try:
        sign_in(page, asgi_live_server, "mel", PASSWORD)
        page.goto(f"{asgi_live_server}/sandboxes/{sandbox['id']}/")
        value = page.locator(".secret-value")
        assert not value.is_visible()
        assert secret not in page.locator("#config").inner_text()
        page.locator(".secret summary").click()
        assert value.is_visible() and value.inner_text() == secret
        page.locator(".secret summary").click()
        assert not value.is_visible()
        page.locator("#usage meter").first.wait_for(timeout=10_000)  # usage came in
        assert page.console_errors == []
    finally:
        with daytona_engine.client() as api:
            api.delete(f"/sandbox/{sandbox['id']}")


def test_a_viewer_is_not_offered_g_n(page, asgi_live_server, daytona_engine) -> None:
    make_user("vic", Role.VIEWER)
    sign_in(page, asgi_live_server, "vic", PASSWORD)
    page.goto(f"{asgi_live_server}/volumes/")
    page.keyboard.press("?")
    dialog = page.locator("#shortcuts-dialog[open]")
    dialog.wait_for()
    assert "Go to sandboxes" in dialog.inner_text()
    assert "New sandbox" not in dialog.inner_text()
    page.keyboard.press("Escape")
    page.keyboard.press("g")
    page.keyboard.press("n")
    page.wait_for_timeout(300)
    assert page.url == f"{asgi_live_server}/volumes/"
