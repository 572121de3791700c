"""The terminal, logs and files URLs, asked by each kind of person, as one table.

Against a real sandbox owned by "mel" on the engine, with a real shell, command and
file, so "allowed" means the view did its work (200), not that it failed later.
Anonymous people are sent to sign in (302); viewers and other members are told the
sandbox does not exist (404, no hint); the owner and admins get through. The
WebSocket endpoints are covered in test_terminal_consumer.py and test_logs_consumer.py.
"""

import uuid
from dataclasses import dataclass, field

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient
from django.urls import reverse

from dashboard.terminal.consumers import pty_id_for
from dashboard.terminal.models import Shell

pytestmark = pytest.mark.django_db(transaction=True)

WHO = ["anonymous", "viewer", "owner", "other", "admin"]


@dataclass(frozen=True)
class Row:
    method: str
    name: str
    codes: tuple[int, int, int, int, int]  # in WHO's order
    args: tuple = ()  # after the sandbox id; names resolved from the world below
    data: dict = field(default_factory=dict)


DENIED = (302, 404, 200, 404, 200)

ROWS = [
    Row("get", "terminal", (302, 200, 200, 200, 200)),  # the page says who may type
    Row("get", "terminal_shells", DENIED),
    Row("get", "terminal_commands", DENIED),
    Row("get", "terminal_log", DENIED, args=("session", "command")),
    Row("get", "files", DENIED, data={"path": "/tmp"}),
    Row("get", "files_download", DENIED, data={"path": "/tmp/authz.txt"}),
    Row("post", "files_folder", DENIED, data={"path": "/tmp", "name": "authz-dir"}),
    Row(
        "post",
        "files_move",
        DENIED,
        data={"path": "/tmp", "name": "authz-dir", "destination": "/tmp/authz-moved"},
    ),
    Row("post", "files_delete", DENIED, data={"path": "/tmp", "name": "authz-moved"}),
    Row("post", "files_upload", DENIED, data={"path": "/tmp", "upload": True}),
    # Last: it kills the shell.
    Row("post", "terminal_close", DENIED, args=("shell",)),
]


@pytest.fixture
def world(make_sandbox, daytona_engine, member_user, other_member, viewer_user, admin_user):
    sandbox = make_sandbox(owner="mel")
    session = uuid.uuid4().hex
    with daytona_engine.client() as http:
        toolbox = f"{daytona_engine.toolbox_url}/{sandbox['id']}"
        created = http.post(f"{toolbox}/process/pty", json={"id": pty_id_for(session)})
        assert created.status_code == 201, created.text
        http.post(f"{toolbox}/process/session", json={"sessionId": "authz"})
        ran = http.post(
            f"{toolbox}/process/session/authz/exec",
            json={"command": "echo authz | tee /tmp/authz.txt", "runAsync": False},
        )
        assert ran.status_code < 300, ran.text
    Shell.objects.create(pty_id=pty_id_for(session), sandbox_id=sandbox["id"], owner=member_user)
    people = {
        "anonymous": None,
        "viewer": viewer_user,
        "owner": member_user,
        "other": other_member,
        "admin": admin_user,
    }
    names = {"shell": session, "session": "authz", "command": ran.json()["cmdId"]}
    return sandbox, people, names


@pytest.mark.parametrize("who", WHO)
async def test_terminal_logs_and_files_urls_by_who_asks(world, who) -> None:
    sandbox, people, names = world
    # Async: streamed answers (a log, a file) are read to their end, closing their stream.
    client = AsyncClient()
    if people[who] is not None:
        await client.aforce_login(people[who])
    wrong = []
    for row in ROWS:
        url = reverse(row.name, args=[sandbox["id"], *(names[a] for a in row.args)])
        data = dict(row.data)
        if data.pop("upload", False):
            data["files"] = SimpleUploadedFile("authz-up.txt", b"up\n")
        response = await getattr(client, row.method)(url, data)
        if response.streaming:
            body = b"".join([chunk async for chunk in response.streaming_content])
            assert body, row.name
        expected = row.codes[WHO.index(who)]
        if response.status_code != expected:
            wrong.append(f"{row.method} {row.name}: {response.status_code}, not {expected}")
        elif expected == 302:
            assert response["Location"].startswith(reverse("login")), row.name
    assert wrong == [], wrong
