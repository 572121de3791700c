"""The audit trail in Chromium: filter, open an entry, follow new ones, export."""

import csv
import io

import pytest
from playwright.sync_api import expect

from dashboard.accounts.models import Role
from dashboard.audit.trail import record
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_auditor_filters_opens_an_entry_follows_new_ones_and_exports_them(
    page, asgi_live_server
) -> None:
    make_user("aud", Role.AUDITOR)
    mel = make_user("mel", Role.MEMBER)
    max_ = make_user("max", Role.MEMBER)
    for i in range(60):
        record(mel, "sandbox.start", target_kind="sandbox", target_id=f"mel-{i}", user_agent="UA")
    record(max_, "sandbox.stop", target_kind="sandbox", target_id="max-1")
    sign_in(page, asgi_live_server, "aud", PASSWORD)
    page.goto(f"{asgi_live_server}/audit/")

    page.select_option("#id_range", "24h")  # a change of a select filters at once
    page.wait_for_url("**/audit/?*range=24h*")
    page.fill("#id_actor", "mel")
    page.locator("[data-audit-filters] button[type=submit]").click()
    page.wait_for_url("**actor=mel*")
    page.select_option("#id_refresh", "10")
    page.wait_for_url("**refresh=10*")
    page.wait_for_load_state("networkidle")
    expect(page.locator("#results")).to_have_attribute("data-audit-every", "10", timeout=15_000)
    rows = page.locator("tbody.audit-entry")
    rows.first.wait_for()
    assert rows.count() == 50  # one page; the rest behind "Older"
    assert "max-1" not in page.locator("#results").inner_text()
    assert page.locator(".pager a:has-text('Older')").is_visible()

    # An entry's detail opens in place and stays open while new entries arrive on top.
    newest = rows.first.get_attribute("data-seq")
    page.locator(f"#entry-{newest} .audit-toggle").click()
    detail = page.locator(f"#detail-{newest}")
    # Fetched from the entry's page on opening; generous waits: the machine is shared.
    expect(detail).to_contain_text("User agent", timeout=15_000)
    assert detail.is_visible() and "UA" in detail.inner_text()
    wrap = page.locator("#results .table-wrap")
    wrap.hover()
    page.mouse.wheel(0, 600)
    for _ in range(50):
        if wrap.evaluate("element => element.scrollTop") > 0:
            break
        page.wait_for_timeout(100)
    scrolled = wrap.evaluate("element => element.scrollTop")
    first_seen = page.locator(f"#entry-{int(newest) - 10}").bounding_box()["y"]
    assert scrolled > 0
    record(mel, "sandbox.delete", target_kind="sandbox", target_id="mel-new")
    record(max_, "sandbox.delete", target_kind="sandbox", target_id="max-new")
    page.locator("tbody.audit-entry:has-text('mel-new')").wait_for(timeout=40_000)
    assert "max-new" not in page.locator("#results").inner_text()
    assert rows.first.inner_text().count("mel-new") == 1
    assert detail.is_visible()  # still open
    # The row the reader was looking at stays where it was (not sent back to the top).
    assert wrap.evaluate("element => element.scrollTop") > scrolled
    assert abs(page.locator(f"#entry-{int(newest) - 10}").bounding_box()["y"] - first_seen) < 2

    with page.expect_download() as event:
        page.locator("a[data-export=csv]").click()
    download = event.value
    name = download.suggested_filename
    assert name.startswith("sandbar-audit-") and name.endswith(".csv") and "start" not in name
    with open(download.path(), encoding="utf-8") as handle:
        exported = list(csv.DictReader(io.StringIO(handle.read())))
    assert {row["actor_name"] for row in exported} == {"mel"}
    assert len(exported) == 61 and exported[0]["target_id"] == "mel-new"
    assert page.console_errors == []
