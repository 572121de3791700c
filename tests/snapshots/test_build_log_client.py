"""The build-log read, with a fake Daytona for what the engine never sends (a huge log,
a character cut in two, a log on another host, a failure)."""

import httpx
import pytest

from dashboard import daytona
from dashboard.daytona import client
from dashboard.daytona.snapshots import LOG_LIMIT


@pytest.fixture
def fake(settings):
    settings.DAYTONA_API_URL = "http://daytona.invalid/api"
    settings.DAYTONA_API_KEY = "secret-key-123"
    seen: list[httpx.Request] = []

    def install(log: bytes, status: int = 200):
        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            if request.url.path.endswith("/build-logs-url"):
                return httpx.Response(
                    200, json={"url": "http://proxy.invalid/snapshots/s1/build-logs"}
                )
            return httpx.Response(status, content=log)

        client.use_transport(httpx.MockTransport(handler))
        return seen

    yield install
    client.use_transport(None)


async def test_the_log_is_read_from_where_daytona_says_with_the_key(fake) -> None:
    seen = fake(b"line one\nline two\n")
    log = await daytona.build_log("s1")
    assert log == daytona.BuildLog("line one\nline two\n", truncated=False)
    assert seen[-1].url.host == "proxy.invalid"
    assert "follow" not in seen[-1].url.params
    assert seen[-1].headers["Authorization"] == "Bearer secret-key-123"


async def test_a_huge_log_keeps_its_tail_from_a_whole_line(fake) -> None:
    fake(b"x" * 100 + b"\n" + b"y" * LOG_LIMIT + b"\nlast line\n")
    log = await daytona.build_log("s1")
    assert log.truncated
    assert log.text == "last line\n"


async def test_a_character_cut_by_a_running_build_waits_for_the_next_look(fake) -> None:
    fake("naïve ✓".encode()[:-1])
    assert (await daytona.build_log("s1", complete=False)).text == "naïve "
    assert (await daytona.build_log("s1", complete=True)).text == "naïve \ufffd"


async def test_a_failure_is_daytonas_error(fake) -> None:
    fake(b'{"message": "no such build"}', status=404)
    with pytest.raises(daytona.NotFound, match="no such build"):
        await daytona.build_log("s1")
