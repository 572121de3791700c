"""Every URL, asked by each kind of person: the table later areas extend.

Each row names a URL and what anonymous, viewer, member and admin get back, and
auditor where it differs from viewer (an auditor reads what a viewer reads, plus both
audit logs, their export and the chain check). 302 for anonymous always means "sent
to sign in" (checked below). The auditor is also asked every sandbox-scoped URL and
every WebSocket route at the end; a URL in no table gets no more for an auditor than
for a viewer.
"""

import uuid
from dataclasses import dataclass, field

import pytest
from django.urls import reverse

from tests.conftest import client_for
from tests.terminal.conftest import make_sandbox  # noqa: F401 (a fixture)


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
    auditor: int | None = None  # None: what the viewer gets

    def expected(self, who: str) -> int:
        if who == "auditor":
            return self.viewer if self.auditor is None else self.auditor
        return getattr(self, who)


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
    Row("post", "sandbox_view_save", 302, 302, 302, 302, data={"name": "A", "query": "q=a"}),
    Row("get", "sandbox_view", 302, 404, 404, 404, args=(999_999,)),
    Row("post", "sandbox_view_delete", 302, 404, 404, 404, args=(999_999,)),
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
    Row("get", "limits_history", 302, 200, 200, 200, data={"scope": "mel", "range": "7d"}),
    Row("post", "limits_history", 302, 405, 405, 405),
    Row("get", "audit", 302, 200, 200, 200),
    Row("get", "audit_daytona", 302, 403, 403, 200, auditor=200),
    Row("get", "audit_new", 302, 200, 200, 200, data={"after": 0}),
    Row("get", "audit_entry", 302, 404, 404, 404, args=(999_999,)),
    Row("get", "audit_export", 302, 403, 403, 200, data={"format": "csv"}, auditor=200),
    Row("post", "audit_check", 302, 403, 403, 302, auditor=302),
    Row("get", "team", 302, 200, 200, 200),
    Row("get", "account", 302, 200, 200, 200),
    Row("get", "second_factor", 302, 200, 200, 200),
    Row("post", "account_session_end", 302, 404, 404, 404, args=(999_999,)),
    Row("post", "account_sessions_end", 302, 302, 302, 302),
    Row("get", "settings", 302, 403, 403, 200),
    Row("get", "connections", 302, 403, 403, 200),
    Row("get", "connection_create", 302, 403, 403, 200),
    Row("post", "connection_create", 302, 403, 403, 400, data={"name": "x"}),
    Row("get", "connection_edit", 302, 403, 403, 404, args=(999_999,)),
    Row("post", "connection_delete", 302, 403, 403, 404, args=(999_999,)),
    Row("post", "connection_test", 302, 403, 403, 404, args=(999_999,)),
    Row("post", "connection_switch", 302, 403, 403, 403, data={"connection": "999999"}),
    Row("post", "connection_switch", 302, 302, 302, 302, data={"connection": "default"}),
    Row("get", "connection_menu", 302, 200, 200, 200),
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
        "auditor": make_user("aud", Role.AUDITOR),
        "target": make_user("tom", Role.VIEWER),
    }


@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"{row.method}-{row.name}")
@pytest.mark.parametrize("who", ["anonymous", "viewer", "member", "admin", "auditor"])
def test_each_url_answers_each_role_as_the_table_says(everyone, row: Row, who: str) -> None:
    args = tuple(everyone[a].pk if a in everyone else a for a in row.args)
    url = reverse(row.name, args=args)
    client = client_for(None if who == "anonymous" else everyone[who])
    response = getattr(client, row.method)(url, row.data)
    assert response.status_code == row.expected(who), response.content[:300]
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


# -- The auditor against every sandbox-scoped URL and every WebSocket route ----------------
# Against a real sandbox owned by "mel" with a real shell, command and file: a refusal
# here is the access rule, not a missing object. Reads answer 200; everything that acts,
# and the shell, logs and files (which show what someone typed), is refused.

AUDITOR_SANDBOX_ROWS = [
    # (method, name, args after the sandbox id, data, what the auditor gets)
    ("get", "sandbox", (), {}, 200),
    ("get", "sandbox_usage", (), {}, 200),
    ("get", "sandbox_metrics", (), {}, 200),
    ("post", "sandbox_action", ("stop",), {}, 403),
    ("post", "sandbox_action", ("delete",), {}, 403),
    ("post", "sandbox_labels", (), {"label_key": "a"}, 403),
    ("post", "sandbox_lifecycle", (), {"auto_stop": "20"}, 403),
    ("post", "sandbox_network", (), {"public": "on"}, 403),
    ("post", "sandbox_resources", (), {"cpu": "2"}, 403),
    ("get", "terminal", (), {}, 200),  # the page, which says who may type
    ("get", "terminal_shells", (), {}, 404),
    ("get", "terminal_commands", (), {}, 404),
    ("get", "terminal_log", ("session", "command"), {}, 404),
    ("post", "terminal_leave", ("shell",), {}, 404),
    ("post", "terminal_close_mine", (), {}, 404),
    ("get", "files", (), {"path": "/tmp"}, 404),
    ("get", "files_download", (), {"path": "/tmp/authz.txt"}, 404),
    ("post", "files_folder", (), {"path": "/tmp", "name": "authz-dir"}, 404),
    ("post", "files_move", (), {"path": "/tmp", "name": "authz.txt", "destination": "x"}, 404),
    ("post", "files_delete", (), {"path": "/tmp", "name": "authz.txt"}, 404),
    ("post", "files_upload", (), {"path": "/tmp"}, 404),
    ("post", "terminal_close", ("shell",), {}, 404),
]
# Not sandbox-scoped, named by an id that does not exist: 404 (or 403 for a change).
AUDITOR_OTHER_ROWS = [
    ("get", "snapshot", ("no-such-snapshot",), {}, 404),
    ("get", "snapshot_log", ("no-such-snapshot",), {}, 286),  # a poll told to stop
    ("get", "snapshot_log_download", ("no-such-snapshot",), {}, 404),
    ("post", "sandboxes_bulk_item", (), {"token": "none"}, 410),
]
# Reached only through a link sent by mail (a one-time token); tested in tests/accounts.
NOT_LISTED = {"set_password"}


@pytest.fixture
def auditor_world(make_sandbox, daytona_engine, everyone):  # noqa: F811
    from dashboard.terminal.consumers import pty_id_for
    from dashboard.terminal.models import Shell

    sandbox = make_sandbox(owner="mel")
    session = uuid.uuid4().hex
    with daytona_engine.client() as http:
        toolbox = f"{daytona_engine.toolbox_url}/{sandbox['id']}"
        http.post(f"{toolbox}/process/pty", json={"id": pty_id_for(session)}).raise_for_status()
        http.post(f"{toolbox}/process/session", json={"sessionId": "authz"}).raise_for_status()
        ran = http.post(
            f"{toolbox}/process/session/authz/exec",
            json={"command": "echo authz | tee /tmp/authz.txt", "runAsync": False},
        )
        ran.raise_for_status()
    owner = everyone["member"]
    Shell.objects.create(pty_id=pty_id_for(session), sandbox_id=sandbox["id"], owner=owner)
    names = {"shell": session, "session": "authz", "command": ran.json()["cmdId"]}
    return sandbox, names, everyone["auditor"]


@pytest.mark.django_db(transaction=True)
def test_an_auditor_reads_a_sandbox_but_may_not_act_on_it_or_see_inside(
    auditor_world, daytona_engine
) -> None:
    sandbox, names, auditor = auditor_world
    client = client_for(auditor)
    wrong = []
    rows = [
        (m, n, [sandbox["id"], *(names.get(a, a) for a in args)], d, c)
        for m, n, args, d, c in AUDITOR_SANDBOX_ROWS
    ]
    rows += [(m, n, list(args), d, c) for m, n, args, d, c in AUDITOR_OTHER_ROWS]
    for method, name, args, data, expected in rows:
        response = getattr(client, method)(reverse(name, args=args), data)
        if response.status_code != expected:
            wrong.append(f"{method} {name}: {response.status_code}, not {expected}")
    assert wrong == []
    with daytona_engine.client() as http:
        state = http.get(f"/sandbox/{sandbox['id']}").json()["state"]
    assert state == "started"  # the refused stop and delete did nothing


@pytest.mark.django_db(transaction=True)
def test_an_auditor_follows_the_live_list_but_opens_no_shell_and_no_logs(auditor_world) -> None:
    import json

    from asgiref.sync import async_to_sync
    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator

    from dashboard.asgi import application

    sandbox, _, auditor = auditor_world
    origin = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]

    async def connect(path: str) -> tuple[WebsocketCommunicator, bool]:
        client = await database_sync_to_async(client_for)(auditor)
        cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
        communicator = WebsocketCommunicator(application, path, headers=[*origin, cookie])
        connected, _ = await communicator.connect(timeout=15)
        return communicator, connected

    async def refused(path: str) -> tuple[str, int]:
        ws, connected = await connect(path)
        assert connected  # accepted only to say why
        message = json.loads(await ws.receive_from(timeout=15))
        code = (await ws.receive_output(timeout=15))["code"]
        await ws.disconnect()
        return message["type"], code

    async def live() -> bool:
        ws, connected = await connect("/ws/sandboxes/")
        await ws.disconnect()
        return connected

    assert async_to_sync(live)()
    base = f"/ws/sandboxes/{sandbox['id']}"
    assert async_to_sync(refused)(f"{base}/terminal/{uuid.uuid4().hex}/") == ("error", 4403)
    assert async_to_sync(refused)(f"{base}/logs/") == ("error", 4403)


def test_an_auditor_gets_what_a_viewer_gets_from_any_url_not_in_a_table(everyone) -> None:
    """URLs added since the tables were written: asked with ids that match nothing, by
    GET and POST, the auditor may get no further than a viewer."""
    from django.urls import URLPattern, URLResolver, get_resolver
    from django.urls.converters import IntConverter

    def patterns(resolver: URLResolver) -> list[URLPattern]:
        found = []
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                found += patterns(pattern)
            elif pattern.name:
                found.append(pattern)
        return found

    listed = {row.name for row in ROWS} | NOT_LISTED
    listed |= {row[1] for row in AUDITOR_SANDBOX_ROWS + AUDITOR_OTHER_ROWS}
    client = {who: client_for(everyone[who]) for who in ("viewer", "auditor")}
    wrong = []
    for pattern in patterns(get_resolver()):
        if pattern.name in listed:
            continue
        converters = getattr(pattern.pattern, "converters", {})
        kwargs = {
            key: 999_999 if isinstance(converter, IntConverter) else "no-such-thing"
            for key, converter in converters.items()
        }
        url = reverse(pattern.name, kwargs=kwargs)
        for method in ("get", "post"):
            codes = {who: getattr(c, method)(url).status_code for who, c in client.items()}
            if codes["auditor"] != codes["viewer"]:
                wrong.append(f"{method} {pattern.name}: {codes}")
    assert wrong == []
