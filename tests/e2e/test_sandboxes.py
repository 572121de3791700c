import re
import uuid

import pytest

from dashboard.accounts.models import Role
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_member_creates_a_sandbox_sees_it_started_and_stops_it_live(
    page, asgi_live_server, daytona_engine
) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    page.goto(f"{asgi_live_server}/sandboxes/new/")
    page.fill("#id_name", name)
    page.click("#create-form button[type=submit]")
    page.wait_for_url(re.compile(r"/sandboxes/[0-9a-f-]{36}/$"))
    head = page.locator("#sandbox-head")
    assert head.locator("h1").inner_text() == name
    assert head.locator(".badge").inner_text() == "started"
    page.locator("#live-status.on").wait_for(timeout=5000)
    with page.expect_request(re.compile(r"/stop/$")) as stop:
        page.click("#sandbox-head button[data-verb=stop]")
    # The page's script gives the button a one-time token (a double click acts once).
    assert re.search(r"(^|&)once=[0-9a-f]{32}(&|$)", stop.value.post_data), stop.value.post_data
    # The action answers at once; the live push brings the final state.
    page.locator('#sandbox-head[data-state="stopped"]').wait_for(timeout=10_000)
    page.goto(f"{asgi_live_server}/sandboxes/?q={name}")
    row = page.locator(f"tr:has-text('{name}')")
    assert row.locator(".badge").inner_text() == "stopped"
    row.locator("button[data-verb=delete]").click()
    page.locator("#confirm-dialog[open]").wait_for()
    assert page.locator("[data-confirm-ok]").inner_text() == f"Delete {name}"
    page.click("[data-confirm-ok]")
    row.locator('.badge:has-text("destroying"), .badge:has-text("destroyed")').first.wait_for()
    assert page.console_errors == []


def test_an_open_list_shows_a_sandbox_made_elsewhere_and_its_changes_without_a_reload(
    page, asgi_live_server, daytona_engine
) -> None:
    make_user("vic", Role.VIEWER)
    sign_in(page, asgi_live_server, "vic", PASSWORD)
    page.goto(f"{asgi_live_server}/sandboxes/")
    page.locator("#live-status.on").wait_for(timeout=5000)
    page.wait_for_timeout(1200)  # the shared watch has its first picture
    with daytona_engine.client() as api:
        created = api.post("/sandbox", json={"name": f"sdk-{uuid.uuid4().hex[:8]}"}).json()
        page.locator(f'#sb-{created["id"]}[data-state="started"]').wait_for(timeout=5000)
        api.post(f"/sandbox/{created['id']}/stop")
        page.locator(f'#sb-{created["id"]}[data-state="stopped"]').wait_for(timeout=5000)
        api.delete(f"/sandbox/{created['id']}")
    assert page.console_errors == []


def test_a_bulk_stop_shows_its_progress_with_counts_and_the_failure(
    page, asgi_live_server, daytona_engine
) -> None:
    make_user("ada", Role.ADMIN)
    sign_in(page, asgi_live_server, "ada", PASSWORD)
    prefix = f"bulk-{uuid.uuid4().hex[:6]}"
    with daytona_engine.client() as api:
        made = [api.post("/sandbox", json={"name": f"{prefix}-{n}"}).json() for n in range(3)]
    page.goto(f"{asgi_live_server}/sandboxes/?q={prefix}")
    page.locator("#live-status.on").wait_for(timeout=5000)
    page.check("[data-select-all]")
    page.click("#bulk-bar [data-bulk=stop]")
    dialog = page.locator("#bulk-dialog[open]")
    dialog.wait_for()
    assert dialog.locator("#bulk-title").inner_text() == "Stop 3 sandboxes?"
    # Deleted elsewhere after the confirmation: that one fails, the others go on.
    with daytona_engine.client() as api:
        api.delete(f"/sandbox/{made[2]['id']}")
    dialog.locator("button[type=submit]").click()
    dialog.locator("[data-bulk-run][data-bulk-finished]").wait_for(timeout=10_000)
    assert dialog.locator("#bulk-title").inner_text() == "Stop: 2 of 3 done · 1 failed"
    assert dialog.locator("progress[data-bulk-bar]").get_attribute("aria-valuetext") == (
        "2 of 3 done, 1 failed"
    )
    failures = dialog.locator("[data-bulk-failures]")
    assert failures.is_visible()
    # Gone before the click, it is known only by its id.
    assert f"{made[2]['id']}: It no longer exists." in failures.inner_text()
    for sandbox in made[:2]:
        page.locator(f'#sb-{sandbox["id"]}[data-state="stopped"]').wait_for(timeout=10_000)
    dialog.locator("[data-close-dialog]").click()
    with daytona_engine.client() as api:
        for sandbox in made[:2]:
            api.delete(f"/sandbox/{sandbox['id']}")
    assert page.console_errors == []


def test_a_resize_shows_the_new_resources_in_the_overview_at_once(
    page, asgi_live_server, daytona_engine
) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    with daytona_engine.client() as api:
        body = {"name": f"e2e-{uuid.uuid4().hex[:8]}", "labels": {"sandbar.owner": "mel"}}
        created = api.post("/sandbox", json=body).json()
    try:
        page.goto(f"{asgi_live_server}/sandboxes/{created['id']}/")
        assert "1 vCPU" in page.locator("#facts").inner_text()
        page.fill("#resize-cpu", "2")
        page.click("#resize-form button[type=submit]")
        page.locator('#facts .res-chip:has-text("2 vCPU")').wait_for(timeout=10_000)
        assert page.locator("#resize-cpu").input_value() == "2"
        assert page.console_errors == []
    finally:
        with daytona_engine.client() as api:
            api.delete(f"/sandbox/{created['id']}")


@pytest.mark.parametrize(("role", "boxes"), [(Role.VIEWER, 0), (Role.MEMBER, 1)])
def test_a_viewer_reads_the_list_without_selection_boxes_or_greyed_buttons(
    page, asgi_live_server, sandbox, role, boxes
) -> None:
    make_user("mel", role)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    row = f"#sb-{sandbox['id']}"
    page.wait_for_selector(row)
    visible = f"{row} input[type=checkbox]:visible"
    assert page.locator(visible).count() == boxes
    buttons = page.locator(f"{row} .row-actions button:visible").count()
    assert (buttons > 0) == (boxes > 0), buttons
    assert page.console_errors == []
