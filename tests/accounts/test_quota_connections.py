"""A member's quota is per Daytona connection: the one in use is the one checked.

Connection B is a row aimed at the same embedded engine as the Default (A), so the
member's sandboxes are the same on both and only the quota differs.
"""

import uuid

import pytest
from django.db import connection as db
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from dashboard.accounts.access import OWNER_LABEL
from dashboard.accounts.models import ConnectionQuota, Role
from dashboard.connections.models import Connection
from tests.conftest import client_for

CREATE = "/sandboxes/new/"


@pytest.fixture
def b(daytona_engine, member_user) -> Connection:
    connection = Connection(name="b-same-engine", api_url=daytona_engine.api_url)
    connection.set_secret(daytona_engine.api_key)
    connection.save()
    connection.users.add(member_user)
    return connection


@pytest.fixture
def sandboxes(daytona_engine):
    """Names of sandboxes to delete after the test; one owned by the member to start."""
    with daytona_engine.client() as http:
        owned = http.post("/sandbox", json={"name": _name(), "labels": {OWNER_LABEL: "mel"}})
    assert owned.status_code == 200, owned.text
    names = [owned.json()["name"]]
    yield names
    with daytona_engine.client() as http:
        for name in names:
            http.delete(f"/sandbox/{name}")


def _name() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


def _create(client, daytona_engine, sandboxes: list[str]) -> bool:
    """Whether the member's create went through to the engine."""
    name = _name()
    sandboxes.append(name)
    response = client.post(CREATE, {"name": name})
    assert response.status_code in (200, 302)
    with daytona_engine.client() as http:
        made = http.get(f"/sandbox/{name}").status_code == 200
    assert made == (response.status_code == 302)
    if not made:
        assert "Your quota allows 1 of sandboxes" in response.content.decode()
    return made


def _use(client, connection: Connection | None) -> None:
    value = connection.pk if connection else "default"
    assert client.post(reverse("connection_switch"), {"connection": value}).status_code == 302


def test_a_quota_on_the_default_does_not_apply_on_another_connection(
    daytona_engine, member_user, b, sandboxes
) -> None:
    ConnectionQuota.objects.create(user=member_user, connection=None, quota_sandboxes=1)
    client = client_for(member_user)
    assert not _create(client, daytona_engine, sandboxes)
    _use(client, b)
    assert _create(client, daytona_engine, sandboxes)


def test_a_quota_on_a_connection_applies_there_and_not_on_the_default(
    daytona_engine, member_user, b, sandboxes
) -> None:
    ConnectionQuota.objects.create(user=member_user, connection=b, quota_sandboxes=1)
    client = client_for(member_user)
    _use(client, b)
    assert not _create(client, daytona_engine, sandboxes)
    _use(client, None)
    assert _create(client, daytona_engine, sandboxes)


def test_the_team_page_sets_the_quota_of_the_connection_in_use_and_says_which(
    daytona_engine, admin_user, member_user, b
) -> None:
    ConnectionQuota.objects.create(user=member_user, connection=None, quota_cpu=2)
    admin = client_for(admin_user)
    _use(admin, b)
    assert "On the b-same-engine connection" in admin.get(reverse("team")).content.decode()
    response = admin.post(
        reverse("team_quota", args=[member_user.pk]), {"quota_cpu": "8", "quota_sandboxes": "3"}
    )
    assert response.status_code == 302
    on_b = ConnectionQuota.objects.get(user=member_user, connection=b)
    assert (on_b.quota_cpu, on_b.quota_sandboxes) == (8, 3)
    on_default = ConnectionQuota.objects.get(user=member_user, connection=None)
    assert (on_default.quota_cpu, on_default.quota_sandboxes) == (2, None)
    # The summary shown is the one of the connection in use.
    assert "3 sandboxes" in admin.get(reverse("team")).content.decode()
    _use(admin, None)
    assert "3 sandboxes" not in admin.get(reverse("team")).content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_each_persons_quota_to_the_default() -> None:
    before, after = ("accounts", "0006_auditor_role"), ("accounts", "0007_connection_quotas")
    executor = MigrationExecutor(db)
    executor.migrate([before])
    try:
        old = executor.loader.project_state([before]).apps.get_model("accounts", "User")
        old.objects.create(username="limited", role=Role.MEMBER, quota_cpu=4, quota_disk=0)
        old.objects.create(username="free", role=Role.MEMBER)
        executor = MigrationExecutor(db)
        executor.migrate([after])
    finally:
        MigrationExecutor(db).migrate(MigrationExecutor(db).loader.graph.leaf_nodes())
    (quota,) = ConnectionQuota.objects.all()
    assert quota.user.username == "limited" and quota.connection is None
    assert (quota.quota_cpu, quota.quota_disk, quota.quota_sandboxes) == (4, 0, None)
