"""The Metrics tab over the embedded engine's telemetry (sampled every second in tests)."""

import json
import time
from datetime import UTC, datetime

import httpx
import pytest
from django.urls import reverse

from dashboard import daytona
from dashboard.daytona import client
from dashboard.sandboxes.metrics import charts_from

HX = {"HX-Request": "true"}
GIB = 1 << 30


def charts_in(html: str) -> dict[str, dict]:
    """The `data-chart` payloads on a page, by key."""
    import html as html_lib
    import re

    found = re.findall(r'data-chart="([^"]*)"', html)
    payloads = [json.loads(html_lib.unescape(raw)) for raw in found]
    return {payload["key"]: payload for payload in payloads}


def metrics_body(member_client, sandbox_id: str, seconds: float = 20, **params) -> str:
    """The tab's body once the engine has sampled the sandbox twice."""
    url = reverse("sandbox_metrics", args=[sandbox_id])
    deadline = time.monotonic() + seconds
    while True:
        html = member_client.get(url, params, headers=HX).content.decode()
        memory = charts_in(html).get("memory")
        if memory and len(memory["times"]) >= 2:
            return html
        assert time.monotonic() < deadline, html[:2000]
        time.sleep(0.5)


def test_the_tab_charts_cpu_memory_disk_and_network_from_the_engine(
    make_sandbox, member_client
) -> None:
    sandbox = make_sandbox(owner="mel", memory=2, disk=3)
    html = metrics_body(member_client, sandbox["id"])
    charts = charts_in(html)
    assert list(charts) == ["cpu", "memory", "disk", "network"]
    memory = charts["memory"]
    assert [line["label"] for line in memory["lines"]] == ["Used", "Limit"]
    assert set(memory["lines"][1]["values"]) - {None} == {2 * GIB}
    assert all(0 < v < 2 * GIB for v in memory["lines"][0]["values"] if v is not None)
    disk_size = {v for v in charts["disk"]["lines"][1]["values"] if v is not None}
    assert disk_size and all(2.5 * GIB < v <= 3 * GIB for v in disk_size)
    cpu = charts["cpu"]
    assert {v for v in cpu["lines"][1]["values"] if v is not None} == {1.0}  # the default vCPU
    assert [line["label"] for line in charts["network"]["lines"]] == ["Received", "Sent"]
    start, end = memory["span"]  # the whole hour is drawn, not only the seconds sampled
    assert end - start == pytest.approx(3600, abs=1)
    assert start <= memory["times"][0] <= memory["times"][-1] <= end + 1
    # The same numbers as tables, and a poll while the tab is open.
    assert html.count("as a table</summary>") == 4
    assert "2 GiB" in html  # the memory limit, written for people
    assert 'hx-trigger="every 15s"' in html
    assert "<html" not in html


def test_the_sandbox_page_loads_the_tab_with_its_chart_scripts(make_sandbox, member_client):
    sandbox = make_sandbox(owner="mel")
    url = reverse("sandbox", args=[sandbox["id"]])
    html = member_client.get(url, {"tab": "metrics", "range": "6h"}).content.decode()
    assert 'aria-current="page">' in html and "Metrics</a>" in html
    metrics_url = reverse("sandbox_metrics", args=[sandbox["id"]])
    assert f'hx-get="{metrics_url}?range=6h" hx-trigger="load"' in html
    assert "vendor/uplot-1.6.32.min.js" in html and "js/charts.js" in html
    assert "<noscript>" in html


@pytest.mark.parametrize(
    ("asked", "shown"), [("6h", "6h"), ("24h", "24h"), ("7y", "1h"), ("", "1h")]
)
def test_each_range_is_offered_and_an_unknown_one_falls_back_to_an_hour(
    make_sandbox, viewer_client, asked, shown
) -> None:
    sandbox = make_sandbox(owner="mel")
    url = reverse("sandbox_metrics", args=[sandbox["id"]])
    response = viewer_client.get(url, {"range": asked}, headers=HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert (
        f'?range={shown}" hx-target="#metrics-body" hx-swap="outerHTML" aria-current="true"' in html
    )
    for name in ("1h", "6h", "24h"):
        assert f"?range={name}" in html


def test_without_scripts_the_metrics_are_a_page_of_their_own(make_sandbox, member_client) -> None:
    sandbox = make_sandbox(owner="mel")
    html = member_client.get(reverse("sandbox_metrics", args=[sandbox["id"]])).content.decode()
    assert "<html" in html
    assert 'aria-current="page">Metrics</span>' in html
    assert "vendor/uplot-1.6.32.css" in html


def test_a_sandbox_that_does_not_exist_is_404(daytona_engine, member_client) -> None:
    response = member_client.get(reverse("sandbox_metrics", args=["no-such-sandbox"]))
    assert response.status_code == 404


def _engine_except_telemetry(engine, answer: httpx.Response) -> httpx.MockTransport:
    """The real engine for every call but the telemetry one, which gets ``answer``."""

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/telemetry/metrics"):
            return answer
        async with httpx.AsyncClient() as real:
            url = request.url.copy_with(scheme="http", host="127.0.0.1", port=engine.port)
            forwarded = await real.request(
                request.method, url, headers=request.headers, content=request.content
            )
            return httpx.Response(
                forwarded.status_code, headers=forwarded.headers, content=forwarded.content
            )

    return httpx.MockTransport(handler)


@pytest.fixture
def telemetry_answers(daytona_engine):
    """Swap the connection's telemetry answer for one the engine never gives."""

    def install(answer: httpx.Response) -> None:
        client.use_transport(_engine_except_telemetry(daytona_engine, answer))

    yield install
    client.use_transport(None)


def test_a_connection_without_telemetry_gets_a_clear_empty_state(
    make_sandbox, member_client, telemetry_answers
) -> None:
    sandbox = make_sandbox(owner="mel")
    telemetry_answers(httpx.Response(404, json={"statusCode": 404, "message": "Cannot GET"}))
    url = reverse("sandbox_metrics", args=[sandbox["id"]])
    response = member_client.get(url, headers=HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-metrics-empty="no-telemetry"' in html
    assert "No metrics from this Daytona" in html
    assert "data-chart=" not in html


def test_malformed_metrics_show_an_error_not_a_500(
    make_sandbox, member_client, telemetry_answers
) -> None:
    sandbox = make_sandbox(owner="mel")
    telemetry_answers(httpx.Response(200, json={"series": [{"dataPoints": []}]}))
    url = reverse("sandbox_metrics", args=[sandbox["id"]])
    html = member_client.get(url, headers=HX).content.decode()
    assert "Metrics cannot be read." in html
    assert "malformed metrics" in html


def test_a_stopped_sandbox_with_no_samples_in_range_says_so(
    make_sandbox, member_client, daytona_engine, telemetry_answers
) -> None:
    sandbox = make_sandbox(owner="mel")
    with daytona_engine.client() as http:
        assert http.post(f"/sandbox/{sandbox['id']}/stop").status_code == 200
    # The engine has a few seconds of samples from before the stop; a range without any
    # is what a sandbox stopped for over an hour gets.
    telemetry_answers(httpx.Response(200, json={"series": []}))
    url = reverse("sandbox_metrics", args=[sandbox["id"]])
    html = member_client.get(url, headers=HX).content.decode()
    assert 'data-metrics-empty="no-samples"' in html
    assert "No samples in the last 1h" in html
    assert "and it is stopped" in html


def test_cpu_is_drawn_in_vcpus_from_daytonas_percentage_of_the_limit() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    series = [
        daytona.MetricSeries("daytona.sandbox.cpu.utilization", ((moment, 50.0),)),
        daytona.MetricSeries("daytona.sandbox.cpu.limit", ((moment, 4.0),)),
    ]
    cpu, memory, disk, network = charts_from(series)
    assert cpu.lines[0].values == (2.0,)
    assert cpu.lines[1].values == (4.0,) and cpu.lines[1].limit
    assert memory.empty and disk.empty and network.empty


@pytest.mark.parametrize(
    ("who", "status"), [("anonymous", 302), ("viewer", 200), ("owner", 200), ("other", 200)]
)
def test_everyone_who_may_see_the_sandbox_sees_its_metrics(
    make_sandbox, viewer_user, member_user, other_member, who, status
) -> None:
    from tests.conftest import client_for

    sandbox = make_sandbox(owner="mel")
    people = {"anonymous": None, "viewer": viewer_user, "owner": member_user, "other": other_member}
    response = client_for(people[who]).get(reverse("sandbox_metrics", args=[sandbox["id"]]))
    assert response.status_code == status
    if status == 302:
        assert response["Location"].startswith(reverse("login"))
    else:
        html = response.content.decode()
        assert 'class="card chart-card' in html or "data-metrics-empty" in html
