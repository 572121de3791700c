"""The terminal's pages: the tab, full screen, the list of shells and closing one."""

import uuid

import pytest
from django.urls import reverse

from dashboard.terminal.consumers import pty_id_for
from dashboard.terminal.models import Shell
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shell(make_sandbox, daytona_engine, member_user):
    sandbox = make_sandbox(owner="mel")
    session = uuid.uuid4().hex
    with daytona_engine.client() as http:
        toolbox = f"{daytona_engine.toolbox_url}/{sandbox['id']}"
        created = http.post(f"{toolbox}/process/pty", json={"id": pty_id_for(session)})
        assert created.status_code == 201, created.text
    Shell.objects.create(pty_id=pty_id_for(session), sandbox_id=sandbox["id"], owner=member_user)
    return sandbox, session


def test_the_terminal_tab_holds_the_terminal_for_the_owner(make_sandbox, member_client) -> None:
    sandbox = make_sandbox(owner="mel")
    html = member_client.get(reverse("sandbox", args=[sandbox["id"]]), {"tab": "terminal"})
    body = html.content.decode()
    assert "data-terminal" in body and "js/terminal.js" in body
    # The CSP carries the nonce xterm.js's <style> elements need; scripts stay 'self'.
    policy = html["Content-Security-Policy"]
    assert "style-src 'self' 'nonce-" in policy and "script-src 'self';" in policy


def test_a_viewer_gets_no_terminal(make_sandbox, viewer_client) -> None:
    sandbox = make_sandbox(owner="mel")
    body = viewer_client.get(reverse("sandbox", args=[sandbox["id"]]), {"tab": "terminal"})
    assert "data-terminal" not in body.content.decode()
    assert "owner or an admin" in body.content.decode()
    assert viewer_client.get(reverse("terminal", args=[sandbox["id"]])).status_code == 200
    assert viewer_client.get(reverse("terminal_shells", args=[sandbox["id"]])).status_code == 404


def test_the_full_screen_page_holds_the_terminal(make_sandbox, member_client) -> None:
    sandbox = make_sandbox(owner="mel")
    body = member_client.get(reverse("terminal", args=[sandbox["id"]])).content.decode()
    assert "terminal-panel is-full" in body


def test_the_open_shells_are_listed_and_the_owner_closes_one(shell, member_client) -> None:
    sandbox, session = shell
    listing = member_client.get(reverse("terminal_shells", args=[sandbox["id"]]))
    assert session[:10] in listing.content.decode() and "Attach" in listing.content.decode()
    closed = member_client.post(reverse("terminal_close", args=[sandbox["id"], session]))
    assert closed.status_code == 200
    assert session[:10] not in closed.content.decode()


def test_an_admin_may_close_a_members_shell_but_another_member_may_not_see_it(
    shell, admin_client, other_member
) -> None:
    sandbox, session = shell
    other = client_for(other_member)
    assert other.get(reverse("terminal_shells", args=[sandbox["id"]])).status_code == 404
    url = reverse("terminal_close", args=[sandbox["id"], session])
    assert other.post(url).status_code == 404
    listing = admin_client.get(reverse("terminal_shells", args=[sandbox["id"]])).content.decode()
    assert "Watch" in listing
    assert session[:10] not in admin_client.post(url).content.decode()


def test_closing_an_unknown_shell_is_a_404(make_sandbox, member_client) -> None:
    sandbox = make_sandbox(owner="mel")
    url = reverse("terminal_close", args=[sandbox["id"], "nosuchsession"])
    assert member_client.post(url).status_code == 404
