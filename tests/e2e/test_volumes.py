import uuid

import pytest

from dashboard.accounts.models import Role
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_admin_deletes_volumes_only_after_confirming_in_the_dialog(
    page, asgi_live_server, daytona_engine
) -> None:
    make_user("ada", Role.ADMIN)
    sign_in(page, asgi_live_server, "ada", PASSWORD)
    tag = uuid.uuid4().hex[:6]
    names = [f"e2e-{tag}-{n}" for n in ("one", "two", "three")]
    with daytona_engine.client() as api:
        for name in names:
            api.post("/volumes", json={"name": name}).raise_for_status()
    page.goto(f"{asgi_live_server}/volumes/?q={tag}")
    first = page.locator(f"tr:has-text('{names[0]}')")
    first.locator("button:has-text('Delete')").wait_for()

    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    first.locator("button:has-text('Delete')").click()
    page.locator("#confirm-dialog[open]").wait_for()
    assert page.locator("[data-confirm-ok]").inner_text() == f"Delete {names[0]}"
    page.click("[data-confirm-cancel]")
    page.locator("#confirm-dialog:not([open])").wait_for(state="attached")
    page.wait_for_timeout(300)
    assert not [url for url in requests if url.endswith("/delete/")]

    with page.expect_request(lambda request: request.url.endswith("/delete/")):
        first.locator("button:has-text('Delete')").click()
        page.click("[data-confirm-ok]")
    page.locator(f"tr:has-text('{names[0]}')").wait_for(state="detached", timeout=10_000)

    for name in names[1:]:
        page.locator(f'tr:has-text("{name}") input[name="ids"]').check()
    page.locator("#bulk-bar [data-bulk=delete]").click()
    page.locator("#confirm-dialog[open]").wait_for()
    text = page.locator("[data-confirm-text]").inner_text()
    assert names[1] in text and names[2] in text and text.endswith("This cannot be undone.")
    assert page.locator("[data-confirm-ok]").inner_text().endswith("2 volumes")
    with page.expect_request(lambda request: request.url.endswith("/volumes/bulk/")):
        page.click("[data-confirm-ok]")
    assert page.console_errors == []
