"""The charts in a real browser: the Metrics tab from the engine's telemetry, and usage
over time on the limits page, drawn by uPlot under the strict CSP in both themes."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from dashboard.accounts.models import Role
from dashboard.limits import history
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
# Set to a directory to keep the screenshots (e.g. for docs/screenshots).
SHOTS = os.environ.get("SANDBAR_SCREENSHOTS", "")


def shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


def drawn_points(page, selector: str) -> list[int]:
    return page.eval_on_selector_all(
        selector, "els => els.map(e => Number(e.getAttribute('data-drawn') || 0))"
    )


def test_the_metrics_tab_draws_four_charts_with_hover_values_in_both_themes(
    page, asgi_live_server, daytona_engine, sandbox
) -> None:
    make_user("mel", Role.MEMBER)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    # The engine samples every second in tests; a few seconds give a few points.
    page.wait_for_timeout(3000)
    page.goto(f"{asgi_live_server}/sandboxes/{sandbox['id']}/?tab=metrics")
    page.locator("#metrics-body .chart[data-drawn]").nth(3).wait_for(timeout=20_000)
    assert page.locator("#metrics-body .chart canvas").count() == 4
    assert all(n >= 2 for n in drawn_points(page, "#metrics-body .chart[data-drawn]"))
    titles = page.locator(".chart-card h3").all_inner_texts()
    assert titles == ["CPU", "Memory", "Disk", "Network"]

    # Hovering a chart shows the values at that time in its legend.
    memory = page.locator("[data-chart-key=memory] .u-over")
    box = memory.bounding_box()
    page.mouse.move(box["x"] + box["width"] - 4, box["y"] + box["height"] / 2)
    legend = page.locator("[data-chart-key=memory] .u-legend").inner_text()
    assert "Used" in legend and "Limit" in legend and "GiB" in legend

    # The table fallback holds the same numbers.
    page.click("[data-chart-key=memory] summary")
    assert page.locator("[data-chart-key=memory] table tbody tr").count() >= 2
    shot(page, "metrics-light.png")

    # The dark theme draws again with its own colours; nothing broke the CSP.
    light_axis = page.eval_on_selector(".u-axis", "e => getComputedStyle(e).color")
    page.click("[data-theme-toggle]")
    page.wait_for_function("document.documentElement.dataset.theme === 'dark'")
    page.locator("#metrics-body .chart canvas").nth(3).wait_for()
    assert page.locator("#metrics-body .chart canvas").count() == 4
    shot(page, "metrics-dark.png")
    assert light_axis
    # Another range reloads the body in place and keeps drawing.
    page.click(".range-switch a:has-text('6h')")
    page.locator(".range-switch a[aria-current=true]:has-text('6h')").wait_for()
    page.locator("#metrics-body .chart canvas").nth(3).wait_for()
    assert page.console_errors == []


def test_the_limits_page_draws_usage_over_time_with_quotas(
    page, asgi_live_server, daytona_engine
) -> None:
    make_user("ada", Role.ADMIN)
    now = timezone.now()
    for i in range(24):
        reading = history.Reading(
            person="", sandboxes=i % 5, cpu=i % 7, memory=2 * (i % 3), disk=10 + i,
            cpu_quota=8.0, memory_quota=16.0, disk_quota=200.0,
        )  # fmt: skip
        history.store(history.connection_key(), now - timedelta(minutes=5 * (24 - i)), [reading])
    sign_in(page, asgi_live_server, "ada", PASSWORD)
    page.goto(f"{asgi_live_server}/limits/")
    page.locator("#usage-history .chart[data-drawn]").nth(3).wait_for(timeout=20_000)
    assert drawn_points(page, "#usage-history .chart[data-drawn]") == [24, 24, 24, 24]
    legend = page.locator("[data-chart-key=org-cpu] .u-legend").inner_text()
    assert "Quota" in legend
    shot(page, "limits-history.png")
    page.select_option("#history-range", "7d")
    page.locator("#history-range option[value='7d'][selected]").wait_for(state="attached")
    page.locator("#usage-history .chart canvas").nth(3).wait_for()
    assert page.console_errors == []
