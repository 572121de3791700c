"""First contact: the first-run message, and a page that is not there."""

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_the_first_run_message_gives_the_port_sandbar_port_sets(monkeypatch, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    monkeypatch.setenv("SANDBAR_PORT", "8123")
    monkeypatch.delenv("SANDBAR_HOST", raising=False)
    out = io.StringIO()
    call_command("bootstrap_admin", stdout=out)
    assert "Sign in at http://127.0.0.1:8123/\n" in out.getvalue()
    assert ":8000" not in out.getvalue()


@pytest.mark.django_db
def test_a_signed_out_404_has_no_app_frame_and_offers_the_sign_in(client) -> None:
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "Sign out" not in page
    assert 'class="sidebar"' not in page
    assert 'href="/sign-in/"' in page


# Django renders a 404 of an unknown address in a thread of its own, with a database
# connection that sees only committed rows: the user must be committed.
@pytest.mark.django_db(transaction=True)
def test_a_signed_in_404_keeps_the_app_frame(admin_client) -> None:
    response = admin_client.get("/no-such-page/")
    assert response.status_code == 404
    assert 'class="sidebar"' in response.content.decode()
