"""The account page lists where one is signed in; one session, or all others, can be
signed out from there, and their open WebSockets close with them."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.urls import reverse

from dashboard.accounts.models import AccountSession, Role
from dashboard.audit.models import AuditEntry
from tests.conftest import PASSWORD, client_for, make_user
from tests.served_client import ServedClient

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _addresses_from_a_proxy(settings):
    settings.BEHIND_PROXY = True  # the test client's own address is always 127.0.0.1


def signed_in(ip: str, agent: str) -> ServedClient:
    client = ServedClient()
    response = client.post(
        reverse("login"),
        {"username": "sam", "password": PASSWORD},
        headers={"User-Agent": agent, "X-Forwarded-For": ip},
    )
    assert response.status_code == 302
    return client


@pytest.fixture
def person():
    return make_user("sam", Role.MEMBER)


def test_the_account_page_lists_each_session_and_marks_this_one(person) -> None:
    laptop = signed_in("10.1.0.1", "Laptop Firefox")
    signed_in("10.1.0.2", "Phone Safari")
    html = laptop.get(reverse("account")).content.decode()
    assert "10.1.0.1" in html and "Laptop Firefox" in html
    assert "10.1.0.2" in html and "Phone Safari" in html
    assert html.count("this browser") == 1
    assert html.count(">Sign out</button>") == 1  # only the other one


def test_signing_out_another_session_ends_it_and_is_audited(person) -> None:
    laptop = signed_in("10.1.0.1", "Laptop")
    phone = signed_in("10.1.0.2", "Phone")
    row = AccountSession.objects.get(client_ip="10.1.0.2")
    response = laptop.post(reverse("account_session_end", args=[row.pk]))
    assert response.status_code == 302
    assert phone.get(reverse("account")).status_code == 302  # to the sign-in page
    assert laptop.get(reverse("account")).status_code == 200
    entry = AuditEntry.objects.get(action="auth.session_end")
    assert entry.actor_name == "sam" and entry.detail["client_ip"] == "10.1.0.2"


def test_signing_out_all_others_keeps_this_one(person) -> None:
    this = signed_in("10.1.0.1", "A")
    others = [signed_in(f"10.1.0.{n}", "B") for n in (2, 3)]
    assert this.post(reverse("account_sessions_end")).status_code == 302
    assert [c.get(reverse("account")).status_code for c in others] == [302, 302]
    assert this.get(reverse("account")).status_code == 200
    assert AccountSession.objects.filter(user=person).count() == 1


def test_nobody_ends_someone_elses_session_or_their_own_current_one(person) -> None:
    signed_in("10.1.0.1", "A")
    theirs = AccountSession.objects.get(user=person)
    other = client_for(make_user("max", Role.ADMIN))
    assert other.post(reverse("account_session_end", args=[theirs.pk])).status_code == 404
    own = AccountSession.objects.get(user__username="max")
    assert other.post(reverse("account_session_end", args=[own.pk])).status_code == 302
    assert other.get(reverse("account")).status_code == 200  # still signed in


async def test_signing_a_session_out_closes_its_open_sockets(daytona_engine, person) -> None:
    from dashboard.asgi import application

    laptop = await database_sync_to_async(signed_in)("10.1.0.1", "A")
    phone = await database_sync_to_async(signed_in)("10.1.0.2", "B")
    cookie = f"sessionid={phone.cookies['sessionid'].value}".encode()
    headers = [
        (b"origin", b"http://127.0.0.1:8000"),
        (b"host", b"127.0.0.1:8000"),
        (b"cookie", cookie),
    ]
    ws = WebsocketCommunicator(application, "/ws/sandboxes/", headers)
    assert (await ws.connect(timeout=10))[0]
    row = await database_sync_to_async(AccountSession.objects.get)(client_ip="10.1.0.2")
    assert (await laptop.post(reverse("account_session_end", args=[row.pk]))).status_code == 302
    while (message := await ws.receive_output(1.0))["type"] != "websocket.close":
        pass
    assert message["code"] == 4401
    await ws.disconnect()
