"""Connection secrets at rest: sealed with the configured keys, rotated, never in the clear."""

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError

from dashboard.connections import vault
from dashboard.connections.models import Connection

SECRET = "dtn_0123456789abcdefWXYZ"


def make_connection(name: str = "cloud", secret: str = SECRET, **fields) -> Connection:
    connection = Connection(name=name, api_url="https://daytona.example.test/api", **fields)
    connection.set_secret(secret)
    connection.save()
    return connection


def test_a_saved_secret_is_stored_sealed_and_opens_again(db):
    connection = make_connection()
    stored = Connection.objects.values_list("sealed_secret", "secret_tail").get()
    assert SECRET not in stored[0]
    assert stored[1] == "WXYZ"
    assert Connection.objects.get().secret() == SECRET
    assert SECRET not in repr(connection) and stored[0] not in repr(connection)


def test_without_keys_of_its_own_the_key_is_derived_from_secret_key(db, settings):
    settings.SANDBAR_SECRET_KEYS = []
    make_connection()
    settings.SECRET_KEY = "another-secret-key-entirely-0123456789-abcdefghijkl"
    with pytest.raises(vault.SecretUnreadable, match="enter the secret again"):
        Connection.objects.get().secret()


def test_a_new_key_in_front_still_opens_the_old_and_rotation_moves_every_secret(db, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SANDBAR_SECRET_KEYS = [old]
    make_connection()
    sealed_before = Connection.objects.get().sealed_secret
    assert Fernet(old).decrypt(sealed_before.encode()).decode() == SECRET

    settings.SANDBAR_SECRET_KEYS = [new, old]
    assert Connection.objects.get().secret() == SECRET
    call_command("rotate_connection_secrets")
    sealed_after = Connection.objects.get().sealed_secret
    assert Fernet(new).decrypt(sealed_after.encode()).decode() == SECRET

    settings.SANDBAR_SECRET_KEYS = [new]  # the old key dropped
    assert Connection.objects.get().secret() == SECRET


def test_moving_from_the_derived_key_to_ones_own_is_a_rotation(db, settings):
    settings.SANDBAR_SECRET_KEYS = []
    make_connection()
    own = Fernet.generate_key().decode()
    settings.SANDBAR_SECRET_KEYS = [own]
    call_command("rotate_connection_secrets")
    assert Fernet(own).decrypt(Connection.objects.get().sealed_secret.encode()) == SECRET.encode()


def test_rotation_names_a_connection_no_key_opens(db, settings):
    settings.SANDBAR_SECRET_KEYS = [Fernet.generate_key().decode()]
    make_connection("lost")
    settings.SANDBAR_SECRET_KEYS = [Fernet.generate_key().decode()]
    settings.SECRET_KEY = "a-different-secret-key-0123456789-abcdefghijklmnop"
    with pytest.raises(CommandError, match="lost"):
        call_command("rotate_connection_secrets")


def test_a_malformed_key_is_refused_by_its_place_without_showing_it(settings):
    settings.SANDBAR_SECRET_KEYS = [Fernet.generate_key().decode(), "not-a-fernet-key"]
    with pytest.raises(ImproperlyConfigured, match="key 2 is not a Fernet key") as caught:
        vault.keys()
    assert "not-a-fernet-key" not in str(caught.value)


def test_the_new_key_option_prints_a_usable_key(capsys):
    call_command("rotate_connection_secrets", "--new-key")
    key = capsys.readouterr().out.strip()
    assert Fernet(key).decrypt(Fernet(key).encrypt(b"x")) == b"x"
