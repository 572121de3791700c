import html
import os
import re
import signal
import uuid

import pytest
from django.urls import reverse

from tests.sandboxes.conftest import HX, engine_call, wait_for_state

URL = "/sandboxes/"


@pytest.fixture
def suite() -> str:
    """A label value unique to one test, to see only its own sandboxes on the shared engine."""
    return uuid.uuid4().hex[:10]


def test_the_list_shows_each_sandbox_with_state_owner_resources_and_labels(
    daytona_engine, make_sandbox, admin_client, suite
) -> None:
    mine = make_sandbox(owner="mel", labels={"suite": suite, "team": "web"})
    response = admin_client.get(URL, {"labels": f"suite={suite}"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html
    assert f'id="sb-{mine["id"]}"' in html
    assert mine["name"] in html
    assert "team=web" in html
    assert ">mel</td>" in html
    assert "1&thinsp;vCPU · 1&thinsp;GiB · 3&thinsp;GiB" in html
    assert 'class="badge tone-running"' in html


def test_an_htmx_request_gets_only_the_results(daytona_engine, make_sandbox, member_client, suite):
    make_sandbox(labels={"suite": suite})
    response = member_client.get(URL, {"labels": f"suite={suite}"}, headers=HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="results"')
    assert "<html" not in html


def test_the_global_search_finds_a_sandbox_by_name_prefix_and_by_id(
    daytona_engine, make_sandbox, viewer_client
) -> None:
    sandbox = make_sandbox(name=f"findme-{uuid.uuid4().hex[:6]}")
    by_name = viewer_client.get(URL, {"q": sandbox["name"][:10]})
    assert f'id="sb-{sandbox["id"]}"' in by_name.content.decode()
    by_id = viewer_client.get(URL, {"q": sandbox["id"]})
    assert f'id="sb-{sandbox["id"]}"' in by_id.content.decode()


def test_filters_narrow_the_list_and_show_as_removable_chips(
    daytona_engine, make_sandbox, admin_client, suite
) -> None:
    running = make_sandbox(labels={"suite": suite})
    stopped = make_sandbox(labels={"suite": suite})
    engine_call(daytona_engine, "POST", f"/sandbox/{stopped['id']}/stop")
    wait_for_state(daytona_engine, stopped["id"], "stopped")
    response = admin_client.get(URL, {"labels": f"suite={suite}", "states": "stopped"})
    html = response.content.decode()
    assert f'id="sb-{stopped["id"]}"' in html
    assert f'id="sb-{running["id"]}"' not in html
    assert "State: <strong>stopped</strong>" in html
    # The chip for the state links to the same filters without it.
    assert f'href="?labels=suite%3D{suite}"' in html


def test_the_owner_filter_uses_the_ownership_label(
    daytona_engine, make_sandbox, admin_client, suite
) -> None:
    mels = make_sandbox(owner="mel", labels={"suite": suite})
    maxs = make_sandbox(owner="max", labels={"suite": suite})
    html = admin_client.get(URL, {"labels": f"suite={suite}", "owner": "max"}).content.decode()
    assert f'id="sb-{maxs["id"]}"' in html
    assert f'id="sb-{mels["id"]}"' not in html


def test_pages_follow_daytonas_cursor_forwards_and_back(
    daytona_engine, make_sandbox, admin_client, suite
) -> None:
    ids = {make_sandbox(labels={"suite": suite})["id"] for _ in range(12)}
    first = admin_client.get(URL, {"labels": f"suite={suite}", "limit": 10, "sort": "name"})
    html = first.content.decode()
    seen_first = {i for i in ids if f'id="sb-{i}"' in html}
    assert len(seen_first) == 10
    assert "Page 1" in html
    next_link = first.context["pager"]["next"]
    second = admin_client.get(f"{URL}?{next_link}")
    html2 = second.content.decode()
    seen_second = {i for i in ids if f'id="sb-{i}"' in html2}
    assert seen_second == ids - seen_first
    assert "Page 2" in html2
    assert second.context["pager"]["next"] is None
    back = admin_client.get(f"{URL}?{second.context['pager']['previous']}")
    assert {i for i in ids if f'id="sb-{i}"' in back.content.decode()} == seen_first


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"min_cpu": "lots"}, "CPU from: Enter a whole number."),
        ({"limit": "7"}, "Page size: Select a valid choice."),
        ({"states": "melting"}, "Select a valid choice."),
        ({"cursor": "<script>"}, "This page link is not valid"),
        ({"labels": "no-equals-sign"}, "Write labels as key=value"),
        ({"min_cpu": "4", "max_cpu": "2"}, "Must not be less than the lower bound."),
        ({"created_after": "yesterday"}, "Enter a valid date/time."),
    ],
)
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_a_malformed_filter_is_a_400_with_the_forms_message(
    daytona_engine, member_client, params, message, htmx
) -> None:
    response = member_client.get(URL, params, headers=HX if htmx else {})
    assert response.status_code == 400
    assert message in response.content.decode()


def test_a_cursor_daytona_does_not_know_is_a_400_with_its_message(
    daytona_engine, member_client
) -> None:
    response = member_client.get(URL, {"cursor": "bogus"})
    assert response.status_code == 400
    assert "cursor is not valid" in response.content.decode()


def test_an_unreachable_daytona_shows_a_banner_and_the_page_still_renders(
    db, settings, member_client
) -> None:
    settings.DAYTONA_API_URL = "http://127.0.0.1:9/api"
    settings.DAYTONA_API_KEY = "k"
    response = member_client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Daytona is not answering." in html
    assert "cannot be reached" in html
    # The rest of the dashboard keeps working.
    assert member_client.get(reverse("audit")).status_code == 200


def test_an_empty_list_says_what_to_do_next(daytona_engine, member_client, viewer_client):
    empty = {"labels": f"suite={uuid.uuid4().hex}"}
    assert "No sandbox matches these filters." in member_client.get(URL, empty).content.decode()


def test_a_member_gets_actions_on_their_own_sandbox_and_disabled_ones_on_others(
    daytona_engine, make_sandbox, member_client, suite
) -> None:
    own = make_sandbox(owner="mel", labels={"suite": suite})
    other = make_sandbox(owner="max", labels={"suite": suite})
    html = member_client.get(URL, {"labels": f"suite={suite}"}).content.decode()
    stop_own = reverse("sandbox_action", args=[own["id"], "stop"])
    stop_other = reverse("sandbox_action", args=[other["id"], "stop"])
    assert f'hx-post="{stop_own}"' in html
    assert f'hx-post="{stop_other}"' not in html
    assert "Only its owner or an admin may stop this sandbox" in html


def test_a_viewer_gets_no_new_sandbox_button(daytona_engine, viewer_client) -> None:
    html = viewer_client.get(URL).content.decode()
    assert reverse("sandbox_create") not in html


async def test_a_page_that_fails_to_render_does_not_leave_the_daytona_call_running(
    daytona_engine, member_user, monkeypatch, rf
) -> None:
    from dashboard.sandboxes import views

    tasks = []
    real_started = views.daytona.started

    async def kept(call):
        task = await real_started(call)
        tasks.append(task)
        return task

    async def broken(*args, **kwargs):
        raise RuntimeError("template broke")

    async def auser():
        return member_user

    monkeypatch.setattr(views.daytona, "started", kept)
    monkeypatch.setattr(views, "arender", broken)
    request = rf.get(URL)
    request.auser = auser
    # Daytona holds its answer (the engine is paused), so the call is surely still
    # pending when the render fails: a quick answer could otherwise win the race.
    os.kill(daytona_engine.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(RuntimeError, match="template broke"):
            await views.sandbox_list(request)
    finally:
        os.kill(daytona_engine.process.pid, signal.SIGCONT)
    assert len(tasks) == 1
    assert tasks[0].cancelling() or tasks[0].cancelled()


def test_the_mine_switch_shows_only_my_sandboxes_and_keeps_the_other_filters(
    daytona_engine, make_sandbox, member_client, member_user, suite
) -> None:
    theirs = make_sandbox(owner="somebody-else", labels={"suite": suite})
    mine = make_sandbox(owner=member_user.get_username(), labels={"suite": suite})
    everyone = member_client.get(URL, {"labels": f"suite={suite}"}).content.decode()
    assert f'id="sb-{theirs["id"]}"' in everyone and f'id="sb-{mine["id"]}"' in everyone
    link = re.search(r'<a href="([^"]+)"[^>]*>Mine</a>', everyone)
    assert link is not None and "aria-current" not in link.group(0)
    only_mine = member_client.get(html.unescape(link.group(1))).content.decode()
    assert f'id="sb-{mine["id"]}"' in only_mine
    assert f'id="sb-{theirs["id"]}"' not in only_mine
    assert re.search(r'aria-current="true">Mine</a>', only_mine)
    back = re.search(r'<a href="([^"]+)"[^>]*>All</a>', only_mine)
    again = member_client.get(html.unescape(back.group(1))).content.decode()
    assert f'id="sb-{theirs["id"]}"' in again  # the suite filter came along both ways


def test_a_viewer_who_owns_nothing_gets_no_mine_switch(daytona_engine, viewer_client) -> None:
    page = viewer_client.get(URL).content.decode()
    assert ">Mine</a>" not in page
