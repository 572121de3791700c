"""Django's own middleware, as settings list it, served through the ASGI path."""

import pytest
from django.core import checks
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse


def deploy_check_ids() -> set[str]:
    return {m.id for m in checks.run_checks(include_deployment_checks=True, tags=["security"])}


def test_the_deploy_checks_see_the_security_settings() -> None:
    # Django's checks find its middleware by exact path: a subclass in MIDDLEWARE
    # would make an unset HSTS or HTTPS redirect pass without a word.
    with override_settings(SECURE_HSTS_SECONDS=0, SECURE_SSL_REDIRECT=False):
        found = deploy_check_ids()
    assert {"security.W004", "security.W008"} <= found
    with override_settings(SECURE_HSTS_SECONDS=3600, SECURE_SSL_REDIRECT=True):
        assert not {"security.W004", "security.W008"} & deploy_check_ids()


def test_no_security_check_is_silenced(settings) -> None:
    assert not [name for name in settings.SILENCED_SYSTEM_CHECKS if name.startswith("security.")]


def test_the_presence_checks_pass_with_the_settings_as_they_are() -> None:
    assert not {"security.W001", "security.W002", "security.W003"} & deploy_check_ids()


@pytest.mark.django_db
def test_a_signed_in_page_reads_the_session_and_the_user_once(daytona_engine, member_client):
    # The login check, the view and the template share one lookup (two queries); the
    # third is the list's own: the person's saved views.
    with CaptureQueriesContext(connection) as queries:
        response = member_client.get(reverse("sandboxes"))
    assert response.status_code == 200
    tables = [q["sql"].split("FROM")[1].split()[0] for q in queries.captured_queries]
    assert tables == ['"django_session"', '"accounts_user"', '"sandboxes_savedview"'], tables


@pytest.mark.django_db
def test_a_message_added_under_asgi_reaches_the_next_page(daytona_engine, member_client) -> None:
    # Storing the message and saving the session happen on the way out of the stack.
    response = member_client.post(reverse("sandbox_action", args=["no-such-sandbox", "stop"]))
    assert response.status_code == 302
    page = member_client.get(response.url)
    assert "This sandbox no longer exists: it was deleted elsewhere." in page.content.decode()
    assert "no longer exists" not in member_client.get(response.url).content.decode()
