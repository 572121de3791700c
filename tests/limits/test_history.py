"""Usage over time on the limits page: sampled once per connection, drawn as charts."""

import json
import re
import uuid
from datetime import timedelta
from html import unescape

import pytest
from asgiref.sync import async_to_sync
from django.urls import reverse
from django.utils import timezone

from dashboard.accounts.access import OWNER_LABEL
from dashboard.accounts.models import ConnectionQuota, Role
from dashboard.connections.active import target_of
from dashboard.connections.models import Connection
from dashboard.daytona import client as daytona_client
from dashboard.limits import history
from dashboard.limits.models import SamplerLease, UsageSample
from tests.conftest import client_for, make_user

HX = {"HX-Request": "true"}


def charts_in(html: str) -> dict[str, dict]:
    payloads = [json.loads(unescape(raw)) for raw in re.findall(r'data-chart="([^"]*)"', html)]
    return {payload["key"]: payload for payload in payloads}


@pytest.fixture
def owned_sandbox(daytona_engine):
    body = {"name": f"hist-{uuid.uuid4().hex[:8]}", "labels": {OWNER_LABEL: "mel"}, "cpu": 2}
    with daytona_engine.client() as http:
        made = http.post("/sandbox", json=body)
        assert made.status_code == 200, made.text
        yield made.json()
        http.delete(f"/sandbox/{made.json()['id']}")


def _engine_usage(engine) -> dict:
    with engine.client() as http:
        organization = http.get("/organizations").json()[0]["id"]
        return http.get(f"/organizations/{organization}/usage").json()["regionUsage"][0]


def test_one_sample_records_the_organization_and_each_member_against_their_quota(
    daytona_engine, owned_sandbox, member_user
) -> None:
    ConnectionQuota.objects.create(user=member_user, quota_cpu=4, quota_sandboxes=3)
    assert async_to_sync(history.sample_once)()
    region = _engine_usage(daytona_engine)
    organization = UsageSample.objects.get(person="")
    assert organization.connection == history.connection_key()
    assert organization.cpu == region["currentCpuUsage"] >= 2
    assert organization.cpu_quota == region["totalCpuQuota"]
    assert organization.sandboxes >= 1 and organization.sandbox_quota is None
    mel = UsageSample.objects.get(person="mel")
    assert (mel.sandboxes, mel.cpu, mel.cpu_quota, mel.sandbox_quota) == (1, 2, 4, 3)
    assert mel.memory_quota is None  # no memory quota set: no limit


def test_a_second_sample_in_the_same_interval_is_not_taken(db, daytona_engine) -> None:
    assert async_to_sync(history.sample_once)()
    assert not async_to_sync(history.sample_once)()
    assert UsageSample.objects.filter(person="").count() == 1
    later = timezone.now() + timedelta(seconds=history.interval())
    assert async_to_sync(history.sample_once)(later)
    assert UsageSample.objects.filter(person="").count() == 2


def test_only_the_lease_holder_samples_until_its_lease_lapses(db) -> None:
    now = timezone.now()
    ttl = timedelta(seconds=60)
    assert history.take_lease("usage:x", "worker-a", ttl, now)
    assert not history.take_lease("usage:x", "worker-b", ttl, now + timedelta(seconds=30))
    assert history.take_lease("usage:x", "worker-a", ttl, now + timedelta(seconds=30))  # renews
    assert not history.take_lease("usage:x", "worker-b", ttl, now + timedelta(seconds=60))
    assert history.take_lease("usage:x", "worker-b", ttl, now + timedelta(seconds=91))
    assert SamplerLease.objects.get(name="usage:x").holder == "worker-b"


def test_a_worker_without_the_lease_takes_no_sample(db, daytona_engine) -> None:
    SamplerLease.objects.create(
        name=f"usage:{history.connection_key()}",
        holder="another-process",
        expires_at=timezone.now() + timedelta(minutes=10),
    )
    assert not async_to_sync(history.sample_once)()
    assert not UsageSample.objects.exists()


def test_samples_past_the_window_are_deleted_as_new_ones_come(db) -> None:
    now = timezone.now()
    old = history.Reading(person="", sandboxes=1, cpu=1, memory=1, disk=1)
    history.store("c", now - history.WINDOW - timedelta(minutes=1), [old])
    history.store("c", now - history.WINDOW + timedelta(minutes=1), [old])
    history.store("c", now, [old])
    assert UsageSample.objects.count() == 2


def _samples(scope: str, count: int, **values) -> None:
    now = timezone.now()
    fields = {"memory": 1, "disk": 2}
    for i in range(count):
        history.store(
            history.connection_key(),
            now - timedelta(minutes=5 * (count - i)),
            [history.Reading(**{"person": scope, "sandboxes": i, "cpu": i, **fields, **values})],
        )


def test_the_organizations_history_is_drawn_with_its_quotas(daytona_engine, viewer_client) -> None:
    _samples("", 12, cpu_quota=32.0, memory_quota=64.0, disk_quota=200.0)
    html = viewer_client.get(reverse("limits_history"), headers=HX).content.decode()
    charts = charts_in(html)
    assert list(charts) == ["org-cpu", "org-memory", "org-disk", "org-sandboxes"]
    cpu = charts["org-cpu"]
    assert [line["label"] for line in cpu["lines"]] == ["Used", "Quota"]
    assert cpu["lines"][0]["values"] == [float(i) for i in range(12)]
    assert set(cpu["lines"][1]["values"]) == {32.0}
    assert [line["label"] for line in charts["org-sandboxes"]["lines"]] == ["Used"]  # no quota
    assert html.count("as a table</summary>") == 4
    assert 'hx-trigger="every 60s"' in html
    # A viewer chooses no member: only the organization is theirs to see.
    assert 'name="scope"' not in html


def test_seven_days_are_averaged_to_at_most_288_points(db, viewer_user) -> None:
    _samples("", 600)
    html = client_for(viewer_user).get(reverse("limits_history"), {"range": "7d"}, headers=HX)
    times = charts_in(html.content.decode())["org-cpu"]["times"]
    assert len(times) == 200  # 600 samples in buckets of 3 (2 would make 300 > 288)
    start, end = charts_in(html.content.decode())["org-cpu"]["span"]
    assert end - start == pytest.approx(7 * 24 * 3600, abs=1)
    assert charts_in(html.content.decode())["org-cpu"]["lines"][0]["values"][0] == 1.0


def test_an_admin_picks_a_member_and_a_member_sees_only_themselves(
    db, daytona_engine, admin_client, member_user
) -> None:
    make_user("meg", Role.MEMBER)
    _samples("mel", 3, sandbox_quota=2)
    _samples("meg", 3)
    html = admin_client.get(reverse("limits_history"), {"scope": "mel"}, headers=HX)
    html = html.content.decode()
    assert '<option value="mel" selected>' in html and '<option value="meg">' in html
    assert set(charts_in(html)["mel-sandboxes"]["lines"][1]["values"]) == {2.0}
    mine = client_for(member_user).get(reverse("limits_history"), {"scope": "meg"}, headers=HX)
    mine = mine.content.decode()
    assert "not yours to see" in mine
    assert '<option value="meg"' not in mine
    assert "Usage over time · Organization" in mine


@pytest.mark.parametrize("params", [{"range": "forever"}, {"scope": "x" * 500}, {"range": ""}])
def test_bad_input_falls_back_to_the_organizations_24_hours(db, viewer_user, params) -> None:
    response = client_for(viewer_user).get(reverse("limits_history"), params, headers=HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<option value="24h" selected>' in html
    assert "data-history-empty" in html
    assert "No usage recorded in the last 24h" in html


def test_the_limits_page_loads_the_history_and_without_scripts_it_is_a_page(
    daytona_engine, member_client
) -> None:
    html = member_client.get(reverse("limits")).content.decode()
    assert f'hx-get="{reverse("limits_history")}" hx-trigger="load"' in html
    assert "vendor/uplot-1.6.32.min.js" in html
    page = member_client.get(reverse("limits_history")).content.decode()
    assert "<html" in page and 'aria-current="page">Usage over time</span>' in page


def _connection(name: str, url: str, key: str) -> Connection:
    connection = Connection(name=name, api_url=url)
    connection.set_secret(key)
    connection.save()
    return connection


def test_each_connection_is_sampled_on_its_own_and_a_dead_one_skips_only_itself(
    db, daytona_engine
) -> None:
    _connection("again", daytona_engine.api_url, daytona_engine.api_key)
    _connection("dead", "http://127.0.0.1:9/api", "k")
    assert async_to_sync(history.sample_all)() == 2  # the Default and "again"
    keys = set(UsageSample.objects.filter(person="").values_list("connection", flat=True))
    assert len(keys) == 2 and history.connection_key() in keys
    assert async_to_sync(history.sample_all)() == 0  # each has this interval's sample


def test_the_history_shown_is_the_active_connections(db, daytona_engine, admin_user) -> None:
    connection = _connection("again", daytona_engine.api_url, daytona_engine.api_key)
    async_to_sync(history.sample_all)()
    with daytona_client.aimed_at(target_of(connection)):
        theirs = history.connection_key()
    UsageSample.objects.exclude(connection=theirs).delete()  # only the other one's is left
    browser = client_for(admin_user)
    html = browser.get(reverse("limits_history"), headers=HX).content.decode()
    assert "data-history-empty" in html  # the Default has none now
    browser.post(reverse("connection_switch"), {"connection": connection.pk})
    html = browser.get(reverse("limits_history"), headers=HX).content.decode()
    assert "org-cpu" in html and "data-history-empty" not in html
