"""In a real browser: an open terminal whose account is deactivated says why it closed."""

import httpx
import pytest
from django.urls import reverse

from dashboard.accounts.models import Role
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_terminal_page_says_the_account_was_deactivated(page, asgi_live_server, sandbox):
    mel = make_user("mel", Role.MEMBER)
    make_user("ada", Role.ADMIN)
    sign_in(page, asgi_live_server, "mel", PASSWORD)
    page.goto(f"{asgi_live_server}/sandboxes/{sandbox['id']}/?tab=terminal")
    page.wait_for_selector("[data-term-status][data-state=open]", timeout=15000)

    # The admin deactivates mel from the Team page, as a browser would post it.
    with httpx.Client(base_url=asgi_live_server) as http:
        http.get("/sign-in/")
        token = http.cookies["csrftoken"]
        login = {"username": "ada", "password": PASSWORD, "csrfmiddlewaretoken": token}
        assert http.post("/sign-in/", data=login).status_code == 302
        token = http.cookies["csrftoken"]
        url = reverse("team_active", args=[mel.pk])
        response = http.post(url, data={"active": "false", "csrfmiddlewaretoken": token})
        assert response.status_code == 302
    page.wait_for_selector("[data-term-banner]:not([hidden])", timeout=5000)
    assert "Your account has been deactivated." in page.inner_text("[data-term-banner]")
    assert page.get_attribute("[data-term-status]", "data-state") == "down"
    page.wait_for_timeout(1500)  # and it does not keep trying to reconnect
    assert "Your account has been deactivated." in page.inner_text("[data-term-banner]")
