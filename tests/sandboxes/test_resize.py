"""Resizing a sandbox from its page, against the embedded engine, by role and ownership."""

import pytest
from django.urls import reverse

from dashboard.accounts.models import ConnectionQuota
from dashboard.audit.models import AuditEntry
from tests.conftest import client_for
from tests.sandboxes.conftest import HX, engine_call, wait_for_state


def url(sandbox_id: str) -> str:
    return reverse("sandbox_resources", args=[sandbox_id])


def on_engine(engine, sandbox_id: str) -> dict:
    return engine_call(engine, "GET", f"/sandbox/{sandbox_id}").json()


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_cpu_and_memory_grow_on_a_running_sandbox(
    daytona_engine, make_sandbox, member_user, admin_user, who
) -> None:
    sandbox = make_sandbox(owner="mel", cpu=1, memory=1)
    client = client_for(member_user if who == "owner" else admin_user)
    response = client.post(url(sandbox["id"]), {"cpu": "2", "memory": "2"}, headers=HX)
    assert response.status_code == 200, response.content[:300]
    assert "Saved." in response["HX-Trigger"]
    html = response.content.decode()
    assert 'name="cpu" min="1" max="64" value="2"' in html
    # The overview card's resources line is swapped too (out of band).
    facts = '<section class="card" id="facts" aria-labelledby="facts-title" hx-swap-oob="true">'
    assert facts in html
    assert '<span class="res-chip">2 vCPU</span> <span class="res-chip">2 GiB memory</span>' in html
    now = on_engine(daytona_engine, sandbox["id"])
    assert (now["cpu"], now["memory"], now["state"]) == (2, 2, "started")
    entry = AuditEntry.objects.get(action="sandbox.resize", target_id=sandbox["id"])
    assert entry.outcome == "success"
    assert entry.detail == {"cpu": 2, "memory": 2, "disk": None}


def test_the_disk_of_a_running_sandbox_is_refused_by_daytona_and_the_input_kept(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel")
    bigger = sandbox["disk"] + 2
    response = member_client.post(
        url(sandbox["id"]),
        {"cpu": str(sandbox["cpu"]), "memory": str(sandbox["memory"]), "disk": str(bigger)},
        headers=HX,
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="resize-error"' in html
    assert "disk can only be resized while the sandbox is stopped" in html
    assert f'name="disk" min="1" max="4096" value="{bigger}"' in html
    assert f'name="cpu" min="1" max="64" value="{sandbox["cpu"]}"' in html
    assert 'id="facts"' not in html  # nothing changed: the overview stays
    assert on_engine(daytona_engine, sandbox["id"])["disk"] == sandbox["disk"]
    entry = AuditEntry.objects.get(action="sandbox.resize", target_id=sandbox["id"])
    assert entry.outcome == "failure"
    assert "stopped" in entry.error


def test_the_disk_grows_while_stopped_but_never_shrinks(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel")
    engine_call(daytona_engine, "POST", f"/sandbox/{sandbox['id']}/stop")
    wait_for_state(daytona_engine, sandbox["id"], "stopped")
    bigger = sandbox["disk"] + 1
    grown = member_client.post(url(sandbox["id"]), {"disk": str(bigger)}, headers=HX)
    assert grown.status_code == 200, grown.content[:300]
    assert on_engine(daytona_engine, sandbox["id"])["disk"] == bigger
    shrunk = member_client.post(url(sandbox["id"]), {"disk": "1"}, headers=HX)
    assert shrunk.status_code == 400
    assert "disk can only grow" in shrunk.content.decode()
    assert on_engine(daytona_engine, sandbox["id"])["disk"] == bigger


@pytest.mark.parametrize("who", ["viewer", "other_member"])
def test_those_who_may_only_look_cannot_resize(
    daytona_engine, make_sandbox, viewer_user, member_user, who
) -> None:
    # The member is "mel": the other member's case is a sandbox someone else owns.
    sandbox = make_sandbox(owner="mel" if who == "viewer" else "max")
    user = viewer_user if who == "viewer" else member_user
    response = client_for(user).post(url(sandbox["id"]), {"cpu": "4"}, headers=HX)
    assert response.status_code == 403
    assert on_engine(daytona_engine, sandbox["id"])["cpu"] == sandbox["cpu"]
    html = client_for(user).get(reverse("sandbox", args=[sandbox["id"]])).content.decode()
    assert url(sandbox["id"]) not in html
    assert "<dt>vCPUs</dt>" in html


def test_a_number_out_of_range_is_a_400_with_the_input_kept(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel")
    response = member_client.post(url(sandbox["id"]), {"cpu": "0"}, headers=HX)
    assert response.status_code == 400
    html = response.content.decode()
    assert "greater than or equal to 1" in html
    assert 'name="cpu" min="1" max="64" value="0"' in html
    assert not AuditEntry.objects.filter(action="sandbox.resize").exists()


def test_the_page_offers_the_resize_form_to_the_owner(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel")
    html = member_client.get(reverse("sandbox", args=[sandbox["id"]])).content.decode()
    assert f'hx-post="{url(sandbox["id"])}"' in html
    assert "Disk only grows, and only while the sandbox is stopped." in html


def test_a_plain_post_redirects_to_the_page(daytona_engine, make_sandbox, member_client) -> None:
    sandbox = make_sandbox(owner="mel", cpu=1)
    response = member_client.post(url(sandbox["id"]), {"cpu": "2"})
    assert response.status_code == 302
    assert response["Location"] == reverse("sandbox", args=[sandbox["id"]])
    assert on_engine(daytona_engine, sandbox["id"])["cpu"] == 2


def test_more_than_daytona_allows_per_sandbox_shows_its_refusal(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel")
    response = member_client.post(url(sandbox["id"]), {"cpu": "64"}, headers=HX)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="resize-error"><p>cpu must be at most' in html
    assert 'name="cpu" min="1" max="64" value="64"' in html
    assert on_engine(daytona_engine, sandbox["id"])["cpu"] == sandbox["cpu"]


def test_a_members_own_quota_refuses_growing_a_running_sandbox_before_daytona_is_asked(
    daytona_engine, make_sandbox, member_user, member_client
) -> None:
    ConnectionQuota.objects.create(user=member_user, quota_cpu=1)
    sandbox = make_sandbox(owner="mel", cpu=1)
    response = member_client.post(url(sandbox["id"]), {"cpu": "2"}, headers=HX)
    assert response.status_code == 429
    assert "Your quota allows 1 of vCPUs" in response.content.decode()
    assert on_engine(daytona_engine, sandbox["id"])["cpu"] == 1
    entry = AuditEntry.objects.get(action="sandbox.resize", target_id=sandbox["id"])
    assert entry.outcome == "denied"
