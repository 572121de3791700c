"""'Test connection' against loopback servers: each fault named as it is."""

import asyncio
import json
import socket

import pytest

from dashboard.connections.models import sign_in_headers
from dashboard.connections.probe import probe
from tests.connections.servers import DAYTONA_CONFIG, closed_port, http_server, silent_port

pytestmark = pytest.mark.asyncio


async def test_the_engine_with_its_key_is_connected(engine):
    verdict = await probe(engine.api_url, sign_in_headers(engine.api_key))
    assert verdict.ok, verdict.message
    assert verdict.message.startswith("Connected: Daytona")


async def test_the_engine_with_a_wrong_key_is_a_refused_key(engine):
    wrong = "dtn_" + "0" * 40
    verdict = await probe(engine.api_url, sign_in_headers(wrong), secret=wrong)
    assert (verdict.ok, verdict.problem) == (False, "unauthorized")
    assert "401" in verdict.message and "refused the key" in verdict.message
    assert wrong not in verdict.message


async def test_a_web_page_is_not_a_daytona_api():
    with http_server({"/config": (200, "text/html", b"<html>hello</html>")}) as (url, _):
        verdict = await probe(url, sign_in_headers("k" * 20))
    assert verdict.problem == "not_daytona"
    assert "text/html, not JSON" in verdict.message


async def test_json_that_is_not_daytonas_settings_is_not_a_daytona_api():
    body = json.dumps({"status": "ok"}).encode()
    with http_server({"/config": (200, "application/json", body)}) as (url, _):
        verdict = await probe(url, sign_in_headers("k" * 20))
    assert verdict.problem == "not_daytona"
    assert "without Daytona's settings" in verdict.message


async def test_a_url_without_the_api_root_is_told_to_end_in_api():
    with http_server({}) as (url, _):
        verdict = await probe(url, sign_in_headers("k" * 20))
    assert verdict.problem == "not_daytona"
    assert "answered 404" in verdict.message and "ending in /api" in verdict.message


async def test_a_403_with_an_organization_names_the_organization_and_sends_the_header():
    refusal = (403, "application/json", json.dumps({"message": "not a member"}).encode())
    routes = {"/config": DAYTONA_CONFIG, "/sandbox": refusal}
    with http_server(routes) as (url, seen):
        verdict = await probe(url, sign_in_headers("jwt-" + "x" * 20, "org-42"))
    assert verdict.problem == "forbidden"
    assert "organization id org-42 is wrong" in verdict.message
    assert "Daytona said: not a member" in verdict.message
    assert seen[-1]["X-Daytona-Organization-ID"] == "org-42"


async def test_a_key_a_server_echoes_back_is_masked():
    secret = "dtn_echoed_secret_value_1234"
    refusal = (401, "application/json", json.dumps({"message": f"bad key {secret}"}).encode())
    with http_server({"/config": DAYTONA_CONFIG, "/sandbox": refusal}) as (url, _):
        verdict = await probe(url, sign_in_headers(secret), secret=secret)
    assert verdict.problem == "unauthorized"
    assert secret not in verdict.message and "[masked]" in verdict.message


async def test_a_closed_port_is_connection_refused():
    verdict = await probe(f"http://127.0.0.1:{closed_port()}/api", sign_in_headers("k" * 20))
    assert verdict.problem == "refused"
    assert "Connection refused" in verdict.message


async def test_an_unresolvable_name_is_a_dns_failure():
    verdict = await probe("https://sandbar-no-such-host.invalid/api", sign_in_headers("k" * 20))
    assert verdict.problem == "dns"
    assert "sandbar-no-such-host.invalid does not resolve" in verdict.message


async def test_a_name_the_resolver_does_not_know_is_a_dns_failure(monkeypatch):
    # The resolver's answer is faked: a real lookup of an unknown name would ask the
    # machine's DNS server, which is not on loopback.
    async def no_such_name(self, host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", no_such_name)
    verdict = await probe("https://daytona.example.com/api", sign_in_headers("k" * 20))
    assert verdict.problem == "dns"
    assert "daytona.example.com does not resolve (Name or service not known)" in verdict.message


async def test_https_to_a_plain_http_port_is_a_tls_failure():
    with http_server({"/config": DAYTONA_CONFIG}) as (url, _):
        verdict = await probe(url.replace("http://", "https://"), sign_in_headers("k" * 20))
    assert verdict.problem == "tls", verdict.message
    assert verdict.message.startswith("TLS:")


async def test_a_server_that_never_answers_is_a_timeout():
    with silent_port() as port:
        verdict = await probe(
            f"http://127.0.0.1:{port}/api", sign_in_headers("k" * 20), seconds=0.5
        )
    assert verdict.problem == "timeout"
    assert "did not answer within 0.5 seconds" in verdict.message
