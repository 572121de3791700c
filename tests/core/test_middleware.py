"""Django's middleware, run on the event loop (dashboard/core/middleware.py)."""

import pytest
from django.core import checks
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse

from dashboard.core.checks import as_django


def deploy_check_ids() -> set[str]:
    return {m.id for m in checks.run_checks(include_deployment_checks=True, tags=["security"])}


def test_each_middleware_stands_for_the_django_class_it_extends(settings) -> None:
    mapped = [as_django(path) for path in settings.MIDDLEWARE]
    for path in (
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ):
        assert path in mapped


def test_the_deploy_checks_still_see_the_security_settings() -> None:
    # Django's own checks look for its exact paths; without dashboard/core/checks.py an
    # unset HSTS or HTTPS redirect would pass without a word.
    with override_settings(SECURE_HSTS_SECONDS=0, SECURE_SSL_REDIRECT=False):
        found = deploy_check_ids()
    assert {"security.W004", "security.W008"} <= found
    assert "sandbar.W001" not in found
    with override_settings(SECURE_HSTS_SECONDS=3600, SECURE_SSL_REDIRECT=True):
        assert not {"security.W004", "security.W008"} & deploy_check_ids()


def test_a_missing_security_middleware_is_still_reported(settings) -> None:
    kept = [p for p in settings.MIDDLEWARE if not p.endswith(".Security")]
    with override_settings(MIDDLEWARE=kept):
        assert "sandbar.W001" in deploy_check_ids()


@pytest.mark.django_db
def test_a_signed_in_page_reads_the_session_and_the_user_once(daytona_engine, member_client):
    # The login check, the view and the template share one lookup (two queries).
    with CaptureQueriesContext(connection) as queries:
        response = member_client.get(reverse("sandboxes"))
    assert response.status_code == 200
    tables = [q["sql"].split("FROM")[1].split()[0] for q in queries.captured_queries]
    assert tables == ['"django_session"', '"accounts_user"'], tables


@pytest.mark.django_db
def test_a_message_added_under_asgi_reaches_the_next_page(daytona_engine, member_client) -> None:
    # Storing the message and saving the session happen on the way out of the stack.
    response = member_client.post(reverse("sandbox_action", args=["no-such-sandbox", "stop"]))
    assert response.status_code == 302
    page = member_client.get(response.url)
    assert "This sandbox no longer exists: it was deleted elsewhere." in page.content.decode()
    assert "no longer exists" not in member_client.get(response.url).content.decode()
