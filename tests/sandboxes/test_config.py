"""The overview's environment and usage card: env values masked, usage read live."""

import uuid

import pytest
from django.urls import reverse

from dashboard.sandboxes.usage import POLL_SECONDS, Share, Usage, in_units, parse_usage
from tests.html_attrs import elements, text_of
from tests.sandboxes.conftest import HX, engine_call, wait_for_state

SECRET = "s3cret-" + uuid.uuid4().hex[:8]


def page(sandbox_id: str) -> str:
    return reverse("sandbox", args=[sandbox_id])


def usage(sandbox_id: str) -> str:
    return reverse("sandbox_usage", args=[sandbox_id])


def test_the_owner_sees_env_names_with_values_masked_until_shown(
    daytona_engine, make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel", env={"API_TOKEN": SECRET, "MODE": "dev"})
    html = member_client.get(page(sandbox["id"])).content.decode()
    assert "API_TOKEN" in text_of(html, "config") and "MODE" in text_of(html, "config")
    secrets = elements(html, "details", **{"class": "secret"})
    assert len(secrets) == 2 and all("open" not in d for d in secrets)
    assert f'<code class="secret-value">{SECRET}</code>' in html
    assert "no call to change them" in text_of(html, "config")


@pytest.mark.parametrize("who", ["viewer_client", "other_member"])
def test_people_who_may_not_change_it_see_names_but_never_values(
    daytona_engine, make_sandbox, request, who
) -> None:
    from tests.conftest import client_for

    sandbox = make_sandbox(owner="mel", env={"API_TOKEN": SECRET})
    fixture = request.getfixturevalue(who)
    client = client_for(fixture) if who == "other_member" else fixture
    html = client.get(page(sandbox["id"])).content.decode()
    assert "API_TOKEN" in html and SECRET not in html
    assert "only people who may change this sandbox" in html


def test_a_sandbox_without_env_says_none_set(daytona_engine, make_sandbox, member_client) -> None:
    html = member_client.get(page(make_sandbox(owner="mel")["id"])).content.decode()
    assert "None set." in text_of(html, "config")


def test_the_page_fetches_usage_once_loaded(daytona_engine, make_sandbox, viewer_client) -> None:
    sandbox = make_sandbox(owner="mel")
    html = viewer_client.get(page(sandbox["id"])).content.decode()
    (live,) = elements(html, "div", id="usage")
    assert live["hx-get"] == usage(sandbox["id"]) and live["hx-trigger"] == "load"


def test_a_running_sandbox_reports_what_it_uses_of_what_it_is_given(
    daytona_engine, make_sandbox, viewer_client
) -> None:
    sandbox = make_sandbox(owner="mel", cpu=1, memory=1, disk=3)
    wait_for_state(daytona_engine, sandbox["id"], "started")
    response = viewer_client.get(usage(sandbox["id"]), headers=HX)
    assert response.status_code == 200
    html = response.content.decode()
    memory, disk = elements(html, "meter")
    assert int(memory["max"]) == 2**30  # the engine shows the sandbox its own limit
    assert 0 < int(memory["value"]) < 2**30
    assert 2.5 * 2**30 < int(disk["max"]) <= 3 * 2**30
    assert "of 1 GiB" in text_of(html, "usage")
    (live,) = elements(html, "div", id="usage")
    assert live["hx-trigger"] == f"every {POLL_SECONDS}s"  # polled while it runs


def test_a_stopped_sandbox_shows_its_allotment_and_is_not_polled(
    daytona_engine, make_sandbox, viewer_client
) -> None:
    sandbox = make_sandbox(owner="mel", cpu=1, memory=1, disk=3)
    wait_for_state(daytona_engine, sandbox["id"], "started")
    engine_call(daytona_engine, "POST", f"/sandbox/{sandbox['id']}/stop")
    wait_for_state(daytona_engine, sandbox["id"], "stopped")
    html = viewer_client.get(usage(sandbox["id"]), headers=HX).content.decode()
    (live,) = elements(html, "div", id="usage")
    assert "hx-get" not in live and not elements(html, "meter")
    text = text_of(html, "usage")
    assert "1 GiB" in text and "3 GiB" in text and "shows while it runs" in text


def test_mounted_volumes_are_named_not_numbered(
    daytona_engine, make_sandbox, viewer_client
) -> None:
    volume = engine_call(
        daytona_engine, "POST", "/volumes", json={"name": f"cfg-{uuid.uuid4().hex[:8]}"}
    ).json()
    try:
        mount = {"volumeId": volume["id"], "mountPath": "/home/daytona/data"}
        sandbox = make_sandbox(owner="mel", volumes=[mount])
        html = viewer_client.get(usage(sandbox["id"]), headers=HX).content.decode()
        text = text_of(html, "usage")
        assert f"{volume['name']} at /home/daytona/data" in text
        assert volume["id"][:8] not in text
    finally:
        for item in engine_call(daytona_engine, "GET", "/sandbox").json().get("items", []):
            if item["name"] == sandbox["name"]:
                engine_call(daytona_engine, "DELETE", f"/sandbox/{item['id']}")
        engine_call(daytona_engine, "DELETE", f"/volumes/{volume['id']}")


def test_usage_of_a_vanished_sandbox_is_a_404(daytona_engine, viewer_client) -> None:
    assert viewer_client.get(usage("no-such-sandbox"), headers=HX).status_code == 404


def test_signed_out_people_are_sent_to_sign_in(daytona_engine, make_sandbox, client) -> None:
    response = client.get(usage(make_sandbox(owner="mel")["id"]))
    assert response.status_code == 302 and "/sign-in/" in response["Location"]


def test_the_usage_lines_are_read_and_junk_is_skipped() -> None:
    output = "mem 1048576 2147483648\n\nbogus line\ndisk x y\ndisk 10 0\nload 0.25\n"
    assert parse_usage(output) == Usage(memory=Share(2**20, 2**31), load=0.25)
    assert parse_usage("") == Usage()


@pytest.mark.parametrize(
    ("size", "text"),
    [(512, "512 B"), (2048, "2 KiB"), (212 * 2**20, "212 MiB"), (3 * 2**29, "1.5 GiB")],
)
def test_sizes_read_as_people_read_them(size, text) -> None:
    assert in_units(size) == text
