"""Two-step sign-in: a code from an authenticator app after the password, optional for
everyone and, when SANDBAR_ADMIN_SECOND_FACTOR is set, required of admins."""

import io
import re

import pyotp
import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from dashboard.accounts import second_factor
from dashboard.accounts.models import Role, SecondFactor
from dashboard.audit.models import AuditEntry
from tests.conftest import PASSWORD, client_for, make_user
from tests.served_client import ServedClient

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def person():
    return make_user("sam", Role.MEMBER)


def set_up(user) -> pyotp.TOTP:
    """Give `user` an authenticator whose last used step is long past."""
    secret = pyotp.random_base32()
    SecondFactor.objects.create(user=user, secret=secret, created_at=timezone.now())
    return pyotp.TOTP(secret)


def password_step(client: ServedClient, next_url: str = ""):
    data = {"username": "sam", "password": PASSWORD, **({"next": next_url} if next_url else {})}
    return client.post(reverse("login"), data)


def test_setting_it_up_takes_a_code_from_the_app(person) -> None:
    client = client_for(person)
    page = client.get(reverse("second_factor"))
    html = page.content.decode()
    assert page.status_code == 200 and 'src="data:image/svg+xml' in html
    secret = re.search(r'<code class="mono">([A-Z2-7]+)</code>', html).group(1)
    assert client.post(reverse("second_factor"), {"code": "000000"}).status_code == 400
    code = pyotp.TOTP(secret).now()
    assert client.post(reverse("second_factor"), {"code": code}).status_code == 302
    assert SecondFactor.objects.get(user=person).secret == secret
    assert AuditEntry.objects.filter(action="auth.second_factor_on", actor_name="sam").exists()
    assert "Two-step sign-in</dt><dd>on" in client.get(reverse("account")).content.decode()


def test_sign_in_asks_for_the_code_after_the_password_and_takes_each_code_once(person) -> None:
    totp = set_up(person)
    client = ServedClient()
    response = password_step(client, next_url="/audit/")
    assert response.status_code == 302 and response["Location"] == reverse("sign_in_code")
    assert client.get(reverse("account")).status_code == 302  # not signed in yet
    assert client.post(reverse("sign_in_code"), {"code": "123456"}).status_code == 400
    code = totp.now()
    response = client.post(reverse("sign_in_code"), {"code": code})
    assert response.status_code == 302 and response["Location"] == "/audit/"
    assert client.get(reverse("account")).status_code == 200
    entry = AuditEntry.objects.filter(action="auth.sign_in", outcome="success").get()
    assert entry.detail == {"second_factor": "totp"}
    # The same code a second time (someone who watched it typed) is refused.
    again = ServedClient()
    password_step(again)
    assert again.post(reverse("sign_in_code"), {"code": code}).status_code == 400


def test_the_code_step_without_a_right_password_first_goes_back_to_sign_in(person) -> None:
    set_up(person)
    response = ServedClient().post(reverse("sign_in_code"), {"code": "123456"})
    assert response.status_code == 302 and response["Location"] == reverse("login")


def test_a_code_not_typed_in_time_starts_over(person, monkeypatch) -> None:
    totp = set_up(person)
    client = ServedClient()
    password_step(client)
    monkeypatch.setattr(second_factor, "PENDING_SECONDS", -1)
    response = client.post(reverse("sign_in_code"), {"code": totp.now()})
    assert response["Location"] == reverse("login")


def test_guessing_codes_is_throttled(person, settings) -> None:
    settings.LOGIN_ATTEMPTS_LIMIT = 2
    set_up(person)
    client = ServedClient()
    password_step(client)
    codes = [client.post(reverse("sign_in_code"), {"code": "000000"}).status_code for _ in range(3)]
    assert codes == [400, 400, 429]


def test_turning_it_off_needs_the_password_and_a_code(person) -> None:
    totp = set_up(person)
    client = client_for(person)
    url = reverse("second_factor")
    wrong = client.post(url, {"password": "nope", "code": totp.now()})
    assert wrong.status_code == 400
    assert client.post(url, {"password": PASSWORD, "code": totp.now()}).status_code == 302
    assert not SecondFactor.objects.filter(user=person).exists()
    assert AuditEntry.objects.filter(action="auth.second_factor_off").exists()


def test_admins_must_set_it_up_when_the_setting_says_so(admin_user, person, settings) -> None:
    settings.ADMIN_SECOND_FACTOR = True
    admin = client_for(admin_user)
    response = admin.get(reverse("sandboxes"))
    assert response.status_code == 302 and response["Location"] == reverse("second_factor")
    htmx = admin.get(reverse("team"), headers={"HX-Request": "true"})
    assert htmx["HX-Redirect"] == reverse("second_factor")
    assert admin.get(reverse("second_factor")).status_code == 200
    assert admin.post(reverse("logout")).status_code == 302  # signing out still works
    assert client_for(person).get(reverse("team")).status_code == 200  # members: optional
    totp = set_up(admin_user)
    admin = client_for(admin_user)
    assert admin.get(reverse("team")).status_code == 200
    # ...and cannot turn it off.
    refused = admin.post(reverse("second_factor"), {"password": PASSWORD, "code": totp.now()})
    assert refused.status_code == 400
    assert SecondFactor.objects.filter(user=admin_user).exists()


def test_it_is_reset_from_a_shell_for_someone_who_lost_the_app(person) -> None:
    set_up(person)
    out = io.StringIO()
    call_command("reset_second_factor", "sam", stdout=out)
    assert not SecondFactor.objects.filter(user=person).exists()
    assert AuditEntry.objects.filter(action="auth.second_factor_off", actor_name="manage.py")
    assert password_step(ServedClient())["Location"] != reverse("sign_in_code")
