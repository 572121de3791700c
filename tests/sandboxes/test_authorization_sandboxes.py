"""The sandbox URLs, by who asks and whose sandbox it is, against real sandboxes on the engine."""

from dataclasses import dataclass, field

import pytest
from django.urls import reverse

from dashboard.accounts.models import Role
from tests.conftest import client_for, make_user


@dataclass(frozen=True)
class Row:
    method: str
    name: str
    anonymous: int
    viewer: int
    owner: int
    other_member: int
    admin: int
    extra: tuple = ()
    data: dict = field(default_factory=dict)


ROWS = [
    Row("get", "sandbox", 302, 200, 200, 200, 200),
    Row("post", "sandbox_action", 302, 403, 302, 403, 302, extra=("stop",)),
    Row("post", "sandbox_action", 302, 403, 302, 403, 302, extra=("delete",)),
    Row("post", "sandbox_labels", 302, 403, 302, 403, 302, data={"label_key": "a"}),
    Row("post", "sandbox_lifecycle", 302, 403, 302, 403, 302, data={"auto_stop": "20"}),
    Row("post", "sandbox_network", 302, 403, 302, 403, 302, data={"public": "on"}),
    Row("post", "sandbox_resources", 302, 403, 302, 403, 302, data={"cpu": "2"}),
]
WHO = ["anonymous", "viewer", "owner", "other_member", "admin"]


@pytest.fixture
def people(db) -> dict:
    return {
        "viewer": make_user("vic", Role.VIEWER),
        "owner": make_user("mel", Role.MEMBER),
        "other_member": make_user("max", Role.MEMBER),
        "admin": make_user("ada", Role.ADMIN),
    }


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.method}-{r.name}-{'-'.join(r.extra)}")
@pytest.mark.parametrize("who", WHO)
def test_each_sandbox_url_answers_each_person_as_the_table_says(
    daytona_engine, make_sandbox, people, row: Row, who: str
) -> None:
    sandbox = make_sandbox(owner="mel")
    url = reverse(row.name, args=[sandbox["id"], *row.extra])
    client = client_for(people.get(who))
    response = getattr(client, row.method)(url, row.data)
    assert response.status_code == getattr(row, who), response.content[:300]
    if who == "anonymous":
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    ("who", "status"), [("anonymous", 302), ("viewer", 403), ("owner", 200), ("admin", 200)]
)
def test_the_create_form_answers_each_person(daytona_engine, people, who, status) -> None:
    response = client_for(people.get(who)).get(reverse("sandbox_create"))
    assert response.status_code == status
