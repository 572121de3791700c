import pytest
from django.urls import reverse

from dashboard.accounts.models import Role
from dashboard.audit.models import AuditEntry, Outcome
from tests.conftest import PASSWORD, make_user
from tests.served_client import ServedClient as Client


@pytest.fixture
def person(db):
    return make_user("sam", Role.MEMBER)


def sign_in(client: Client, username: str, password: str, **extra):
    return client.post(reverse("login"), {"username": username, "password": password, **extra})


def test_it_signs_in_with_the_right_password_and_records_it(client, person) -> None:
    response = sign_in(client, "sam", PASSWORD)
    assert response.status_code == 302
    assert client.get(reverse("account")).status_code == 200
    entry = AuditEntry.objects.first()
    assert (entry.action, entry.actor_name, entry.outcome) == (
        "auth.sign_in",
        "sam",
        Outcome.SUCCESS,
    )
    assert entry.client_ip == "127.0.0.1"


def test_it_refuses_a_wrong_password_with_a_clear_message(client, person) -> None:
    response = sign_in(client, "sam", "wrong")
    assert response.status_code == 400
    assert b"username and password do not match" in response.content
    assert client.get(reverse("account")).status_code == 302
    entry = AuditEntry.objects.first()
    assert (entry.action, entry.outcome, entry.actor_id) == (
        "auth.sign_in",
        Outcome.FAILURE,
        person.pk,
    )


def test_it_says_when_an_account_is_deactivated(client, person) -> None:
    person.is_active = False
    person.save()
    response = sign_in(client, "sam", PASSWORD)
    assert response.status_code == 400
    assert b"deactivated" in response.content
    assert client.get(reverse("account")).status_code == 302


def test_deactivating_someone_ends_their_open_session(client, person) -> None:
    sign_in(client, "sam", PASSWORD)
    person.is_active = False
    person.save()
    assert client.get(reverse("account")).status_code == 302


def test_it_rate_limits_failed_attempts_even_before_a_right_password(
    client, person, settings
) -> None:
    settings.LOGIN_ATTEMPTS_LIMIT = 3
    for _ in range(3):
        assert sign_in(client, "sam", "wrong").status_code == 400
    response = sign_in(client, "sam", PASSWORD)
    assert response.status_code == 429
    assert b"Too many failed sign-in attempts" in response.content
    assert client.get(reverse("account")).status_code == 302
    assert AuditEntry.objects.first().outcome == Outcome.DENIED


def test_failures_from_other_addresses_slow_an_account_down_but_never_lock_it(
    client, person, settings
) -> None:
    settings.LOGIN_ATTEMPTS_LIMIT = 2
    settings.BEHIND_PROXY = True  # the test client's address is always 127.0.0.1
    for ip in ("10.0.0.1", "10.0.0.2"):
        client.post(
            reverse("login"), {"username": "sam", "password": "x"}, headers={"X-Forwarded-For": ip}
        )
    response = client.post(
        reverse("login"),
        {"username": "sam", "password": PASSWORD},
        headers={"X-Forwarded-For": "10.0.0.3"},
    )
    assert response.status_code == 302


def test_a_forged_csrf_token_is_refused_with_a_clear_page(person) -> None:
    client = Client(enforce_csrf_checks=True)
    client.get(reverse("login"))
    response = sign_in(client, "sam", PASSWORD, csrfmiddlewaretoken="forged" * 8)
    assert response.status_code == 403
    assert b"This form has expired" in response.content
    assert client.get(reverse("account")).status_code == 302


def test_it_returns_to_the_page_asked_for_but_never_to_another_site(client, person) -> None:
    assert sign_in(client, "sam", PASSWORD, next="/audit/?actor=x")["Location"] == "/audit/?actor=x"
    client.logout()
    assert sign_in(client, "sam", PASSWORD, next="https://evil.example/")["Location"] == "/"


def test_signing_out_takes_a_post_and_is_recorded(client, person) -> None:
    sign_in(client, "sam", PASSWORD)
    assert client.get(reverse("logout")).status_code == 405
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("account")).status_code == 302
    assert AuditEntry.objects.first().action == "auth.sign_out"


def test_changing_ones_password_needs_the_old_one(client, person) -> None:
    client.force_login(person)
    response = client.post(
        reverse("account"), {"old_password": "nope", "new_password1": "x", "new_password2": "x"}
    )
    assert response.status_code == 200
    person.refresh_from_db()
    assert person.check_password(PASSWORD)
    new = "another-long-password-2"
    response = client.post(
        reverse("account"), {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    )
    assert response.status_code == 302
    person.refresh_from_db()
    assert person.check_password(new)
    assert AuditEntry.objects.first().action == "auth.change_password"
