"""Every URL, asked by each kind of person: the table later areas extend.

Each row names a URL and what anonymous, viewer, member and admin get back.
302 for anonymous always means "sent to sign in" (checked below).
"""

from dataclasses import dataclass, field

import pytest
from django.urls import reverse

from tests.conftest import client_for


@dataclass(frozen=True)
class Row:
    method: str
    name: str
    anonymous: int
    viewer: int
    member: int
    admin: int
    args: tuple = ()
    data: dict = field(default_factory=dict)


def _person_pk(users) -> tuple:
    return (users["viewer"].pk,)


ROWS = [
    Row("get", "healthz", 200, 200, 200, 200),
    Row("get", "login", 200, 302, 302, 302),
    Row("get", "home", 302, 302, 302, 302),
    Row("get", "sandboxes", 302, 200, 200, 200),
    Row("get", "sandbox_create", 302, 403, 200, 200),
    Row("post", "sandbox_create", 302, 403, 200, 200, data={"name": "bad name"}),
    Row("post", "sandboxes_bulk", 302, 400, 400, 400),
    Row("get", "snapshots", 302, 200, 200, 200),
    Row("get", "snapshot_create", 302, 403, 403, 200),
    Row("post", "snapshot_create", 302, 403, 403, 200, data={"name": "bad name"}),
    Row("post", "snapshot_activate", 302, 403, 403, 302, args=("no-such-snapshot",)),
    Row("post", "snapshot_deactivate", 302, 403, 403, 302, args=("no-such-snapshot",)),
    Row("post", "snapshot_delete", 302, 403, 403, 302, args=("no-such-snapshot",)),
    Row("post", "snapshots_bulk", 302, 403, 403, 400),
    Row("get", "volumes", 302, 200, 200, 200),
    Row("get", "volume_create", 302, 403, 403, 200),
    Row("post", "volume_create", 302, 403, 403, 200, data={"name": "-bad"}),
    Row("post", "volume_delete", 302, 403, 403, 302, args=("no-such-volume",)),
    Row("post", "volumes_bulk", 302, 403, 403, 400),
    Row("get", "limits", 302, 200, 200, 200),
    Row("get", "audit", 302, 200, 200, 200),
    Row("get", "audit_daytona", 302, 200, 200, 200),
    Row("get", "team", 302, 200, 200, 200),
    Row("get", "account", 302, 200, 200, 200),
    Row("get", "second_factor", 302, 200, 200, 200),
    Row("post", "account_session_end", 302, 404, 404, 404, args=(999_999,)),
    Row("post", "account_sessions_end", 302, 302, 302, 302),
    Row("get", "settings", 302, 403, 403, 200),
    Row("post", "team_add", 302, 403, 403, 200, data={"username": "newbie", "role": "viewer"}),
    Row("post", "team_role", 302, 403, 403, 302, args=("target",), data={"role": "member"}),
    Row("post", "team_active", 302, 403, 403, 302, args=("target",), data={"active": "false"}),
    Row("post", "team_invite", 302, 403, 403, 302, args=("target",)),
    Row("post", "team_quota", 302, 403, 403, 302, args=("target",), data={"quota_cpu": "2"}),
    Row("post", "team_throttle_clear", 302, 403, 403, 404, args=(999_999,)),
    Row("post", "logout", 302, 302, 302, 302),
]


@pytest.fixture
def everyone(db, daytona_engine):
    # The real engine answers the rows that reach Daytona (a missing id: 404, not 503).
    from dashboard.accounts.models import Role
    from tests.conftest import make_user

    return {
        "viewer": make_user("vic", Role.VIEWER),
        "member": make_user("mel", Role.MEMBER),
        "admin": make_user("ada", Role.ADMIN),
        "target": make_user("tom", Role.VIEWER),
    }


@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"{row.method}-{row.name}")
@pytest.mark.parametrize("who", ["anonymous", "viewer", "member", "admin"])
def test_each_url_answers_each_role_as_the_table_says(everyone, row: Row, who: str) -> None:
    args = tuple(everyone[a].pk if a in everyone else a for a in row.args)
    url = reverse(row.name, args=args)
    client = client_for(None if who == "anonymous" else everyone[who])
    response = getattr(client, row.method)(url, row.data)
    assert response.status_code == getattr(row, who), response.content[:300]
    if who == "anonymous" and response.status_code == 302:
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("row", [r for r in ROWS if r.anonymous == 302], ids=lambda row: row.name)
def test_an_anonymous_htmx_request_gets_a_client_redirect_not_a_login_page(db, row: Row) -> None:
    url = reverse(row.name, args=tuple(1 for _ in row.args))
    response = getattr(client_for(None), row.method)(
        url,
        row.data,
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/audit/?actor=x"},
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/sign-in/?next=%2Faudit%2F%3Factor%3Dx"
    assert b"<form" not in response.content
