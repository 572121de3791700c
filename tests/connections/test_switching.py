"""People switch between the connections they may use; calls follow the choice."""

import json

import pytest
from django.urls import reverse

from dashboard.accounts.models import Role
from dashboard.audit.models import AuditEntry, Outcome
from dashboard.connections.active import SESSION_KEY
from dashboard.connections.models import Connection, Kind
from dashboard.daytona import client as daytona_client
from tests.conftest import client_for, make_user
from tests.connections.servers import DAYTONA_CONFIG, http_server

SECRET = "jwt.recorder-secret-0123456789"
EMPTY_LIST = (200, "application/json", json.dumps({"items": [], "nextCursor": None}).encode())


def _connection(url: str, name: str = "recorder", **fields) -> Connection:
    connection = Connection(
        name=name, api_url=url, kind=Kind.JWT, organization_id="org-7", **fields
    )
    connection.set_secret(SECRET)
    connection.save()
    return connection


def _header_name(page) -> str:
    """The active connection's name as the header shows it."""
    html = page.content.decode()
    start = html.index("connection-name")
    return html[html.index(">", start) + 1 : html.index("</span>", start)]


@pytest.fixture
def recorder():
    """A loopback Daytona stand-in that answers an empty sandbox list and keeps headers."""
    with http_server({"/config": DAYTONA_CONFIG, "/sandbox": EMPTY_LIST}) as (url, seen):
        yield url, seen


def test_an_admin_switches_and_the_calls_go_there_signed_in_with_the_organization(
    daytona_engine, admin_user, recorder
):
    url, seen = recorder
    connection = _connection(url)
    client = client_for(admin_user)
    assert (
        client.post(reverse("connection_switch"), {"connection": connection.pk}).status_code == 302
    )
    page = client.get(reverse("sandboxes"))
    assert page.status_code == 200
    assert _header_name(page) == "recorder"
    menu = client.get(reverse("connection_menu")).content.decode()
    assert f'<option value="{connection.pk}" selected>recorder</option>' in menu
    sandbox_calls = [headers for headers in seen if headers.get("Authorization")]
    assert sandbox_calls, "the sandbox list was not asked of the chosen connection"
    assert sandbox_calls[-1]["Authorization"] == f"Bearer {SECRET}"
    assert sandbox_calls[-1]["X-Daytona-Organization-ID"] == "org-7"
    entry = AuditEntry.objects.get(action="connection.switch")
    assert (entry.outcome, entry.target_name) == (Outcome.SUCCESS, "recorder")

    # Back to the Default: the stand-in hears nothing more.
    before = len(seen)
    assert client.post(reverse("connection_switch"), {"connection": "default"}).status_code == 302
    page = client.get(reverse("sandboxes"))
    assert page.status_code == 200 and len(seen) == before
    assert _header_name(page) == "Default"
    menu = client.get(reverse("connection_menu")).content.decode()
    assert '<option value="default" selected>Default</option>' in menu


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_a_person_without_the_grant_is_refused_and_the_attempt_audited(db, role, recorder):
    connection = _connection(recorder[0])
    person = make_user("pat", role)
    client = client_for(person)
    response = client.post(reverse("connection_switch"), {"connection": connection.pk})
    assert response.status_code == 403
    assert SESSION_KEY not in client.session
    entry = AuditEntry.objects.get(action="connection.switch")
    assert (entry.outcome, entry.actor_name, entry.target_id) == (
        Outcome.DENIED,
        "pat",
        str(connection.pk),
    )

    connection.users.add(person)
    response = client.post(reverse("connection_switch"), {"connection": connection.pk})
    assert response.status_code == 302
    assert client.session[SESSION_KEY] == connection.pk


@pytest.mark.parametrize("value", ["999999", "abc", "-1", "²", "①", "9" * 40])
def test_a_connection_that_does_not_exist_is_refused_the_same_way(admin_client, value):
    response = admin_client.post(reverse("connection_switch"), {"connection": value})
    assert response.status_code == 403
    assert AuditEntry.objects.get(action="connection.switch").outcome == Outcome.DENIED


def test_a_grant_taken_back_sends_the_person_back_to_the_default(
    daytona_engine, member_user, recorder
):
    url, seen = recorder
    connection = _connection(url)
    connection.users.add(member_user)
    client = client_for(member_user)
    client.post(reverse("connection_switch"), {"connection": connection.pk})
    connection.users.remove(member_user)
    before = len(seen)
    page = client.get(reverse("sandboxes"))
    assert page.status_code == 200
    assert len(seen) == before  # the engine (the Default) answered, not the stand-in
    assert SESSION_KEY not in client.session
    assert _header_name(page) == "Default"
    assert "Only the Default" in client.get(reverse("connection_menu")).content.decode()


def test_a_connection_whose_secret_no_key_opens_fails_instead_of_using_another(
    daytona_engine, admin_user, recorder, settings
):
    url, seen = recorder
    connection = _connection(url)
    client = client_for(admin_user)
    client.post(reverse("connection_switch"), {"connection": connection.pk})
    settings.SECRET_KEY = "a-changed-secret-key-0123456789-abcdefghijklmnopq"
    client = client_for(admin_user)  # a session signed with the new key
    client.post(reverse("connection_switch"), {"connection": connection.pk})
    page = client.get(reverse("sandboxes"))
    # The list says why it is empty (its error box), and nothing went to another Daytona.
    assert "recorder: The stored secret cannot be opened" in page.content.decode()
    assert not [headers for headers in seen if headers.get("Authorization")]


async def test_each_connection_gets_one_pooled_client_on_the_servers_loop(monkeypatch):
    # A server another test runs in this process (in a thread, on its own loop) may
    # share a client already: this test plays a server of its own, and the other's is
    # put back afterwards.
    monkeypatch.setattr(daytona_client, "_shared", None)
    await daytona_client.open_shared()
    try:
        one = daytona_client.Target(pool="connection-1", url="http://127.0.0.1:9/api")
        two = daytona_client.Target(pool="connection-2", url="http://127.0.0.1:9/api")
        seen = {}
        for name, target in [("one", one), ("two", two), ("one again", one), ("default", None)]:
            with daytona_client.aimed_at(target):
                async with daytona_client.connection() as http:
                    seen[name] = http
        assert seen["one"] is seen["one again"]
        assert len({id(seen["one"]), id(seen["two"]), id(seen["default"])}) == 3
    finally:
        await daytona_client.close_shared()
    assert seen["one"].is_closed and seen["two"].is_closed


def test_what_a_person_does_on_a_connection_is_audited_with_its_name(
    daytona_engine, admin_user, recorder
):
    from dashboard.audit.trail import check_chain

    connection = _connection(recorder[0])
    client = client_for(admin_user)
    client.post(reverse("connection_switch"), {"connection": connection.pk})
    # Anything recorded now: a connection test is one.
    client.post(reverse("connection_test", args=(connection.pk,)))
    client.post(reverse("connection_switch"), {"connection": "default"})
    client.post(reverse("connection_switch"), {"connection": connection.pk})
    entries = list(AuditEntry.objects.order_by("seq").values_list("action", "connection"))
    assert entries == [
        ("connection.switch", ""),  # made from the Default
        ("connection.test", "recorder"),
        ("connection.switch", "recorder"),
        ("connection.switch", ""),
    ]
    assert check_chain().intact
