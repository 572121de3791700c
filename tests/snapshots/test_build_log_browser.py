"""In the browser: a snapshot's build log is the Logs tab's viewer (search, download)."""

from pathlib import Path

import pytest

from dashboard.accounts.models import Role
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import asgi_live_server, browser, page, sign_in  # noqa: F401
from tests.snapshots.conftest import engine_call

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_build_log_is_searched_and_downloaded_in_the_logs_viewer(
    page,  # noqa: F811
    asgi_live_server,  # noqa: F811
    daytona_engine,
    make_snapshot,
) -> None:
    snapshot = make_snapshot(name="viewer-e2e-1")
    whole = engine_call(daytona_engine, "GET", f"/snapshots/{snapshot['id']}/build-logs").text
    make_user("vic", Role.VIEWER)
    sign_in(page, asgi_live_server, "vic", PASSWORD)
    page.goto(f"{asgi_live_server}/snapshots/{snapshot['id']}/")
    lines = page.locator("#build-log .log-line")
    assert lines.count() == len(whole.splitlines())
    assert page.locator("#build-log").text_content() == whole
    page.fill("[data-logs-search]", "is active")
    page.locator("[data-logs-matches]:has-text('1 match')").wait_for(timeout=3_000)
    assert page.locator("#build-log .log-line.hit").count() == 1
    assert page.locator("#build-log .log-line:visible").count() == 1
    with page.expect_download() as info:
        page.click("[data-logs-download]")
    assert Path(info.value.path()).read_text(encoding="utf-8") == whole
    assert page.console_errors == []
