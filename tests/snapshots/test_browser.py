"""In the browser: build a snapshot, watch its log, deactivate it, delete it by name."""

import re

import pytest

from dashboard.accounts.models import Role
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import asgi_live_server, browser, page, sign_in  # noqa: F401
from tests.snapshots.conftest import engine_call

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_admin_builds_a_snapshot_follows_it_and_deletes_it(
    page,  # noqa: F811
    asgi_live_server,  # noqa: F811
    daytona_engine,
    source_dir,
) -> None:
    make_user("ada", Role.ADMIN)
    sign_in(page, asgi_live_server, "ada", PASSWORD)
    page.goto(f"{asgi_live_server}/snapshots/new/")
    page.fill("#id_name", "e2e-built-1")
    page.select_option("#id_kind", "dir")
    page.fill("#id_source", str(source_dir))
    page.click("#create-form button[type=submit]")
    page.wait_for_url(re.compile(r"/snapshots/[0-9a-f-]{36}/$"))
    head = page.locator("#snapshot-head")
    # Whether the page opened mid-build or after, it ends active with the whole log.
    page.locator('#snapshot-head[data-state="active"]').wait_for(timeout=15_000)
    page.locator("#build-log:has-text('is active')").wait_for(timeout=5_000)
    head.locator("button:has-text('Deactivate')").click()
    page.locator('#snapshot-head[data-state="inactive"]').wait_for(timeout=5_000)
    head.locator("button:has-text('Delete')").click()
    page.locator("#confirm-dialog[open]").wait_for()
    assert page.locator("[data-confirm-ok]").inner_text() == "Delete e2e-built-1"
    page.click("[data-confirm-ok]")
    page.wait_for_url(f"{asgi_live_server}/snapshots/")
    assert engine_call(daytona_engine, "GET", "/snapshots/e2e-built-1").status_code == 404
    assert page.console_errors == []


@pytest.mark.slow
def test_the_log_of_a_running_build_grows_in_place_without_repeats(
    page,  # noqa: F811
    asgi_live_server,  # noqa: F811
    daytona_engine,
    tmp_path,
) -> None:
    # Enough files that copying them takes the engine a moment (more on a busy machine).
    root = tmp_path / "many"
    for d in range(40):
        (root / f"d{d}").mkdir(parents=True)
        for i in range(250):
            (root / f"d{d}" / f"f{i}").write_text("x")
    make_user("ada", Role.ADMIN)
    sign_in(page, asgi_live_server, "ada", PASSWORD)
    page.goto(f"{asgi_live_server}/snapshots/new/")
    page.fill("#id_name", "e2e-slow-1")
    page.fill("#id_source", str(root))
    page.click("#create-form button[type=submit]")
    page.wait_for_url(re.compile(r"/snapshots/[0-9a-f-]{36}/$"))
    snapshot_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    page.locator('#snapshot-head[data-state="active"]').wait_for(timeout=30_000)
    page.locator("#log-follow:has-text('The build ended')").or_(
        page.locator("#log-follow:not([hx-get])")
    ).first.wait_for(timeout=5_000)
    whole = engine_call(daytona_engine, "GET", f"/snapshots/{snapshot_id}/build-logs").text
    # What the page shows is the engine's log exactly: each piece appended once.
    assert page.locator("#build-log").text_content() == whole
    assert page.console_errors == []
    engine_call(daytona_engine, "DELETE", f"/snapshots/{snapshot_id}")


def test_an_admin_deletes_two_snapshots_at_once_after_a_named_confirmation(
    page,  # noqa: F811
    asgi_live_server,  # noqa: F811
    daytona_engine,
    make_snapshot,
) -> None:
    one, two = make_snapshot(name="bulk-e2e-a"), make_snapshot(name="bulk-e2e-b")
    make_user("ada", Role.ADMIN)
    sign_in(page, asgi_live_server, "ada", PASSWORD)
    page.goto(f"{asgi_live_server}/snapshots/?q=bulk-e2e")
    assert page.locator("#bulk-bar").is_hidden()
    page.check("[data-select-all]")
    assert page.locator("[data-bulk-count]").inner_text() == "2"
    assert page.locator("[data-bulk=activate]").is_disabled()  # both are active
    page.click("[data-bulk=delete]")
    page.locator("#confirm-dialog[open]").wait_for()
    text = page.locator("[data-confirm-text]").inner_text()
    assert text.startswith("Delete 2 snapshots: ")
    assert "bulk-e2e-a" in text and "bulk-e2e-b" in text
    assert page.locator("[data-confirm-ok]").inner_text() == "Delete 2 snapshots"
    page.click("[data-confirm-ok]")
    page.locator("#results:has-text('No snapshot name contains')").wait_for(timeout=10_000)
    for snapshot in (one, two):
        found = engine_call(daytona_engine, "GET", f"/snapshots/{snapshot['id']}")
        assert found.status_code == 404
    assert page.console_errors == []
