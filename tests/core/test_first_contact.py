"""First contact: the first-run message, and a page that is not there."""

import io
import re

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core.management import call_command
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from dashboard.accounts.models import Role
from tests.conftest import PASSWORD, make_user


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


def invitation_form(client, user) -> str:
    """Open the one-time link as the invited person does; the form's own address."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    response = client.get(f"/set-password/{uid}/{token}/")
    assert response.status_code == 302
    return response["Location"]


@pytest.mark.django_db
def test_a_too_short_password_is_refused_under_its_own_field_with_the_input_kept(client) -> None:
    invited = make_user("ivy", Role.MEMBER)
    form = invitation_form(client, invited)
    response = client.post(form, {"new_password1": "abc1", "new_password2": "abc1"})
    assert response.status_code == 200
    page = response.content.decode()
    first, second = page.split('for="id_new_password2"')
    assert "too short" in first
    assert "too short" not in second
    assert re.search(r'<input type="password" name="new_password1"[^>]* value="abc1"', first)


@pytest.mark.django_db
def test_a_mismatch_is_shown_under_the_confirmation(client) -> None:
    invited = make_user("ivy", Role.MEMBER)
    form = invitation_form(client, invited)
    response = client.post(form, {"new_password1": PASSWORD, "new_password2": PASSWORD + "x"})
    first, second = response.content.decode().split('for="id_new_password2"')
    assert "match" in second
    assert "match" not in first.split('for="id_new_password1"')[1]
