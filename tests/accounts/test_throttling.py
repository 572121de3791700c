"""Sign-in throttling: counted before the password, per (account, address) and per
address, slowing an account down instead of locking it; admins see and clear it."""

import asyncio
import time

import httpx
import pytest
from django.urls import reverse

from dashboard.accounts import ratelimit
from dashboard.accounts.models import Role, SignInThrottle
from dashboard.audit.models import AuditEntry
from tests.conftest import PASSWORD, client_for, make_user
from tests.e2e.conftest import asgi_live_server  # noqa: F401  (a fixture)
from tests.served_client import ServedClient

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _addresses_from_a_proxy(settings):
    # The test client always connects from 127.0.0.1: other addresses come as a
    # trusted proxy would name them.
    settings.BEHIND_PROXY = True


@pytest.fixture
def person():
    return make_user("sam", Role.MEMBER)


def sign_in(username: str, password: str, ip: str = "10.0.0.1", client=None):
    client = client or ServedClient()
    return client.post(
        reverse("login"),
        {"username": username, "password": password},
        headers={"X-Forwarded-For": ip},
    )


async def test_sixty_simultaneous_wrong_passwords_check_at_most_the_limit(
    person,
    settings,
    asgi_live_server,  # noqa: F811  (the fixture imported above)
):
    # Served by uvicorn as in production: each request in a thread of its own, so the
    # attempts really are checked at the same time (the test client runs them in turn).
    settings.LOGIN_ATTEMPTS_LIMIT = 5
    settings.LOGIN_ADDRESS_ATTEMPTS_LIMIT = 100
    async with httpx.AsyncClient(base_url=asgi_live_server, timeout=60) as http:
        await http.get(reverse("login"))
        form = {
            "username": "sam",
            "password": "wrong",
            "csrfmiddlewaretoken": http.cookies["csrftoken"],
        }
        responses = await asyncio.gather(
            *(http.post(reverse("login"), data=form) for _ in range(60))
        )
    codes = [response.status_code for response in responses]
    assert codes.count(400) <= 5, codes
    assert codes.count(429) >= 55, codes


def test_an_address_that_exhausts_an_account_does_not_lock_it_for_others(person, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 3
    for _ in range(3):
        assert sign_in("sam", "wrong", ip="10.0.0.1").status_code == 400
    refused = sign_in("sam", PASSWORD, ip="10.0.0.1")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert b"Too many failed sign-in attempts" in refused.content
    # The owner, elsewhere, still signs in: later, because the account is slowed down.
    started = time.monotonic()
    assert sign_in("sam", PASSWORD, ip="10.0.0.2").status_code == 302
    assert time.monotonic() - started >= ratelimit.delay_for(3) == 1.0


def test_the_slow_down_grows_with_each_failure_and_has_a_ceiling(settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 3
    delays = [ratelimit.delay_for(failures) for failures in range(12)]
    assert delays[:3] == [0, 0, 0]
    assert delays[3:8] == [1, 2, 4, 8, 16]
    assert delays[8:] == [ratelimit.MAX_DELAY] * 4


def test_an_address_trying_many_accounts_is_refused_for_all_of_them(person, settings):
    settings.LOGIN_ADDRESS_ATTEMPTS_LIMIT = 3
    for name in ("ann", "bob", "cy"):
        assert sign_in(name, "wrong", ip="10.0.0.5").status_code == 400
    assert sign_in("sam", PASSWORD, ip="10.0.0.5").status_code == 429
    assert sign_in("sam", PASSWORD, ip="10.0.0.6").status_code == 302


def test_successful_sign_ins_give_their_count_back(person, settings):
    settings.LOGIN_ADDRESS_ATTEMPTS_LIMIT = 3
    assert sign_in("nobody", "wrong", ip="10.0.0.7").status_code == 400
    for _ in range(5):  # a team behind one NAT address signing in all day
        assert sign_in("sam", PASSWORD, ip="10.0.0.7").status_code == 302
    assert sign_in("nobody", "wrong", ip="10.0.0.7").status_code == 400


def test_a_throttle_is_audited_and_an_admin_sees_and_clears_it(person, admin_user, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 2
    for _ in range(2):
        sign_in("sam", "wrong", ip="10.0.0.8")
    assert sign_in("sam", PASSWORD, ip="10.0.0.8").status_code == 429
    assert AuditEntry.objects.filter(action="auth.throttle", client_ip="10.0.0.8").exists()

    member = client_for(person)
    assert "10.0.0.8" not in member.get(reverse("team")).content.decode()
    admin = client_for(admin_user)
    html = admin.get(reverse("team")).content.decode()
    assert "Sign-in throttles" in html and "10.0.0.8" in html
    throttle = SignInThrottle.objects.get(
        scope=SignInThrottle.Scope.ACCOUNT_ADDRESS, address="10.0.0.8"
    )
    url = reverse("team_throttle_clear", args=[throttle.pk])
    assert member.post(url).status_code == 403
    assert admin.post(url).status_code == 302
    entry = AuditEntry.objects.filter(action="auth.throttle_clear").get()
    assert entry.actor_name == "ada" and entry.detail["address"] == "10.0.0.8"
    assert sign_in("sam", PASSWORD, ip="10.0.0.8").status_code == 302
    assert admin.post(url).status_code == 404  # already cleared
