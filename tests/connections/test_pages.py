"""Admins add, change, test and delete connections; the secret never shows again."""

import logging

import pytest
from django.urls import reverse

from dashboard.accounts.models import Role
from dashboard.audit.models import AuditEntry, Outcome
from dashboard.connections.models import Connection, Kind
from tests.conftest import client_for, make_user

SECRET = "dtn_plaintext_secret_9f3kQz7WXYZ"


def _add(client, **fields):
    data = {
        "name": "cloud",
        "api_url": "https://daytona.example.test/api/",
        "kind": Kind.API_KEY,
        "secret": SECRET,
        "organization_id": "",
    }
    return client.post(reverse("connection_create"), {**data, **fields})


def test_an_admin_adds_a_connection_whose_secret_is_stored_sealed(admin_client):
    response = _add(admin_client)
    connection = Connection.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("connection_edit", args=(connection.pk,))
    assert connection.api_url == "https://daytona.example.test/api"
    assert connection.secret() == SECRET and SECRET not in connection.sealed_secret
    entry = AuditEntry.objects.get(action="connection.create")
    assert entry.target_name == "cloud" and entry.detail["secret_replaced"] is True


def test_a_jwt_without_an_organization_is_refused_with_a_reason(admin_client):
    response = _add(admin_client, kind=Kind.JWT)
    assert response.status_code == 400
    assert b"A JWT needs the organization id." in response.content
    assert not Connection.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "default"}, "is the configured connection"),
        ({"api_url": "ftp://x.test/api"}, "Enter a valid URL"),
        ({"secret": "short"}, "at least 12 characters"),
        ({"secret": "has a space in it"}, "with no spaces"),
        # httpx refuses a non-ASCII header value with an error no caller expects.
        ({"secret": "abcdefghijklé"}, "visible ASCII characters"),
        ({"api_url": "https://me:token@x.test/api"}, "not in the address"),
        ({"organization_id": "orgé"}, "visible ASCII characters only"),
        ({"secret": ""}, "Enter the API key or JWT."),
    ],
)
def test_bad_input_gets_a_clear_error_not_a_500(admin_client, fields, message):
    response = _add(admin_client, **fields)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_an_empty_secret_on_edit_keeps_the_saved_one(admin_client):
    _add(admin_client)
    connection = Connection.objects.get()
    sealed = connection.sealed_secret
    response = admin_client.post(
        reverse("connection_edit", args=(connection.pk,)),
        {"name": "cloud 2", "api_url": connection.api_url, "kind": Kind.API_KEY, "secret": ""},
    )
    assert response.status_code == 302
    connection.refresh_from_db()
    assert (connection.name, connection.sealed_secret) == ("cloud 2", sealed)
    assert AuditEntry.objects.get(action="connection.update").detail["secret_replaced"] is False


def test_an_admin_deletes_a_connection(admin_client):
    _add(admin_client)
    pk = Connection.objects.get().pk
    response = admin_client.post(reverse("connection_delete", args=(pk,)), {"confirm": "on"})
    assert response.status_code == 302
    assert not Connection.objects.exists()
    assert AuditEntry.objects.filter(action="connection.delete", target_id=str(pk)).exists()


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER, Role.AUDITOR])
def test_a_non_admin_may_not_add_a_connection_and_the_attempt_is_audited(db, role):
    response = _add(client_for(make_user("someone", role)))
    assert response.status_code == 403
    assert not Connection.objects.exists()
    entry = AuditEntry.objects.get(action="connection.create")
    assert entry.outcome == Outcome.DENIED


def test_the_test_button_says_connected_for_the_engine(admin_client, engine):
    _add(admin_client, api_url=engine.api_url, secret=engine.api_key)
    pk = Connection.objects.get().pk
    response = admin_client.post(
        reverse("connection_test", args=(pk,)), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert b'data-problem=""' in response.content and b"Connected: Daytona" in response.content
    assert AuditEntry.objects.get(action="connection.test").outcome == Outcome.SUCCESS


def test_the_test_button_names_a_refused_key_and_audits_the_failure(admin_client, engine):
    _add(admin_client, api_url=engine.api_url, secret="dtn_" + "1" * 30)
    pk = Connection.objects.get().pk
    response = admin_client.post(reverse("connection_test", args=(pk,)))
    assert response.status_code == 200
    assert b'data-problem="unauthorized"' in response.content
    entry = AuditEntry.objects.get(action="connection.test")
    assert entry.outcome == Outcome.FAILURE and "401" in entry.error


def test_a_secret_no_key_opens_says_to_enter_it_again(admin_client, settings):
    _add(admin_client)
    pk = Connection.objects.get().pk
    settings.SECRET_KEY = "a-changed-secret-key-0123456789-abcdefghijklmnopq"
    response = client_for(make_user("ann", Role.ADMIN)).post(
        reverse("connection_test", args=(pk,)), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert b"enter the secret again" in response.content


def test_no_page_and_no_log_line_shows_the_secret_plaintext_or_sealed(admin_client, engine, caplog):
    caplog.set_level(logging.DEBUG)
    _add(admin_client, api_url=engine.api_url, secret=SECRET)
    connection = Connection.objects.get()
    sealed = connection.sealed_secret
    pk = connection.pk
    edit = reverse("connection_edit", args=(pk,))
    bodies = [
        admin_client.get(reverse("connections")).content,
        admin_client.get(reverse("connection_create")).content,
        admin_client.get(edit).content,
        admin_client.get(reverse("settings")).content,
        # A form sent back with an error must not echo the secret typed into it.
        admin_client.post(edit, {"name": "", "api_url": "x", "secret": SECRET + "2"}).content,
        admin_client.post(reverse("connection_test", args=(pk,))).content,
        admin_client.post(
            reverse("connection_test", args=(pk,)), headers={"HX-Request": "true"}
        ).content,
        # In use: the header, the switcher, a page whose calls carry the secret.
        admin_client.post(reverse("connection_switch"), {"connection": pk}, follow=True).content,
        admin_client.get(reverse("sandboxes")).content,
        admin_client.get(reverse("connection_menu")).content,
        admin_client.post(reverse("connection_delete", args=(pk,)), follow=True).content,
    ]
    assert b"WXYZ" in bodies[0]  # the tail is shown: the pages did render the connection
    assert b'class="connection-name">cloud</span>' in bodies[8]
    logged = caplog.text + "".join(
        f"{entry.error} {entry.detail}" for entry in AuditEntry.objects.all()
    )
    for secret in (SECRET, SECRET + "2", sealed):
        assert all(secret.encode() not in body for body in bodies)
        assert secret not in logged
